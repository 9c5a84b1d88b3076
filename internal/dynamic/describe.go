package dynamic

import (
	"fmt"
	"strings"

	"github.com/jhump/protoreflect/v2/protoprint"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

// Describe returns the proto source text of a service, method, message,
// enum (or any other descriptor), with its doc comments when the schema has
// source info. Type references are fully qualified, as grpcurl prints them.
func Describe(d protoreflect.Descriptor) (string, error) {
	p := protoprint.Printer{
		Compact:                  true,
		OmitComments:             protoprint.CommentsNonDoc,
		ForceFullyQualifiedNames: true,
	}
	text, err := p.PrintProtoToString(d)
	if err != nil {
		return "", fmt.Errorf("dynamic: describe %s: %w", d.FullName(), err)
	}
	return text, nil
}

// MessageTemplate returns a message of type md with every field present, for
// editors and help text: scalars at their zero value, nested messages
// filled in, repeated fields with one element, maps with one entry, the
// first member of each oneof, and the well-known types at a value that
// shows their JSON form (a timestamp, a duration, an empty Struct, ...).
// Recursive types stop where a message would contain itself.
func MessageTemplate(md protoreflect.MessageDescriptor) proto.Message {
	msg := dynamicpb.NewMessage(md)
	fillTemplate(msg, map[protoreflect.FullName]bool{})
	return msg
}

// TemplateJSON returns MessageTemplate(md) as indented JSON with every
// field shown (unset ones as their JSON default). Field names are the JSON
// (lowerCamelCase) names unless protoNames is set.
func TemplateJSON(md protoreflect.MessageDescriptor, protoNames bool) (string, error) {
	opts := protojson.MarshalOptions{
		Multiline:       true,
		Indent:          "  ",
		EmitUnpopulated: true,
		UseProtoNames:   protoNames,
	}
	data, err := opts.Marshal(MessageTemplate(md))
	if err != nil {
		return "", fmt.Errorf("dynamic: template of %s: %w", md.FullName(), err)
	}
	return stableJSON(data, false, "  "), nil
}

// fillTemplate sets every field of m; onPath holds the message types being
// filled further up, to stop recursion.
func fillTemplate(m protoreflect.Message, onPath map[protoreflect.FullName]bool) {
	md := m.Descriptor()
	if fillWellKnown(m) {
		return
	}
	onPath[md.FullName()] = true
	defer delete(onPath, md.FullName())
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if oo := fd.ContainingOneof(); oo != nil && !oo.IsSynthetic() && oo.Fields().Get(0) != fd {
			continue // a oneof shows its first member only
		}
		switch {
		case fd.IsMap():
			mp := m.Mutable(fd).Map()
			key := templateScalar(fd.MapKey()).MapKey()
			if fd.MapValue().Message() != nil {
				if onPath[fd.MapValue().Message().FullName()] {
					continue
				}
				v := mp.NewValue()
				fillTemplate(v.Message(), onPath)
				mp.Set(key, v)
			} else {
				mp.Set(key, templateScalar(fd.MapValue()))
			}
		case fd.IsList():
			list := m.Mutable(fd).List()
			if fd.Message() != nil {
				if onPath[fd.Message().FullName()] {
					continue
				}
				v := list.NewElement()
				fillTemplate(v.Message(), onPath)
				list.Append(v)
			} else {
				list.Append(templateScalar(fd))
			}
		case fd.Message() != nil:
			if onPath[fd.Message().FullName()] {
				continue
			}
			fillTemplate(m.Mutable(fd).Message(), onPath)
		default:
			m.Set(fd, templateScalar(fd))
		}
	}
}

// templateScalar is the value a scalar field shows in a template: its zero
// value, or an enum's first value.
func templateScalar(fd protoreflect.FieldDescriptor) protoreflect.Value {
	switch fd.Kind() {
	case protoreflect.EnumKind:
		if vals := fd.Enum().Values(); vals.Len() > 0 {
			return protoreflect.ValueOfEnum(vals.Get(0).Number())
		}
		return protoreflect.ValueOfEnum(0)
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(false)
	case protoreflect.StringKind:
		return protoreflect.ValueOfString("")
	case protoreflect.BytesKind:
		return protoreflect.ValueOfBytes(nil)
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32(0)
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64(0)
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(0)
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64(0)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(0)
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64(0)
	default:
		return fd.Default()
	}
}

// fillWellKnown sets a well-known type to a value that shows its JSON form
// and reports whether m was one.
func fillWellKnown(m protoreflect.Message) bool {
	md := m.Descriptor()
	name := md.FullName()
	if name.Parent() != "google.protobuf" {
		return false
	}
	switch name.Name() {
	case "Timestamp", "Duration", "Empty", "Struct", "ListValue", "FieldMask":
		// Their zero value prints as "1970-01-01T00:00:00Z", "0s", {}, {},
		// [] and "": already their JSON form.
		return true
	case "Any":
		// An empty Any prints as {}; a type URL needs a resolvable type.
		return true
	case "Value":
		m.Set(md.Fields().ByName("null_value"), protoreflect.ValueOfEnum(0))
		return true
	}
	if strings.HasSuffix(string(name.Name()), "Value") && md.Fields().Len() == 1 {
		// Wrappers print as their bare value.
		fd := md.Fields().Get(0)
		m.Set(fd, templateScalar(fd))
		return true
	}
	return false
}
