package recording

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"gopkg.in/yaml.v3"

	"github.com/bcctl/bcctl/internal/dynamic"
)

// values writes messages as script values: the shape of their JSON form,
// with the .proto field names, bytes as text where they are printable
// UTF-8 (and {base64: ...} where they are not), and every literal `${`
// escaped so that no recorded text reads as a template.
type values struct {
	types dynamic.TypeResolver
}

// message returns m as a mapping; only the fields that are set are
// written.
func (v values) message(m protoreflect.Message) *yaml.Node {
	if n, ok := v.wellKnown(m); ok {
		return n
	}
	out := mapping()
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if !m.Has(fd) {
			continue
		}
		addPair(out, string(fd.Name()), v.field(fd, m.Get(fd)))
	}
	flowIfSmall(out)
	return out
}

// field returns the value of field fd.
func (v values) field(fd protoreflect.FieldDescriptor, val protoreflect.Value) *yaml.Node {
	switch {
	case fd.IsList():
		list := val.List()
		out := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for i := 0; i < list.Len(); i++ {
			out.Content = append(out.Content, v.single(fd, list.Get(i)))
		}
		flowIfSmall(out)
		return out
	case fd.IsMap():
		out := mapping()
		var keys []protoreflect.MapKey
		val.Map().Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
			keys = append(keys, k)
			return true
		})
		sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
		for _, k := range keys {
			addPair(out, k.String(), v.single(fd.MapValue(), val.Map().Get(k)))
		}
		flowIfSmall(out)
		return out
	}
	return v.single(fd, val)
}

// single returns one value of a field of kind fd.Kind().
func (v values) single(fd protoreflect.FieldDescriptor, val protoreflect.Value) *yaml.Node {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return v.message(val.Message())
	case protoreflect.BytesKind:
		return bytesNode(val.Bytes())
	case protoreflect.StringKind:
		return text(val.String())
	case protoreflect.BoolKind:
		return scalar("!!bool", strconv.FormatBool(val.Bool()))
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByNumber(val.Enum()); ev != nil {
			return text(string(ev.Name()))
		}
		return scalar("!!int", strconv.FormatInt(int64(val.Enum()), 10))
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		f := val.Float()
		switch {
		case math.IsNaN(f):
			return text("NaN")
		case math.IsInf(f, 1):
			return text("Infinity")
		case math.IsInf(f, -1):
			return text("-Infinity")
		}
		return scalar("!!float", strconv.FormatFloat(f, 'g', -1, 64))
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return intNode(strconv.FormatInt(val.Int(), 10), math.Abs(float64(val.Int())) > 1<<53)
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return intNode(strconv.FormatUint(val.Uint(), 10), val.Uint() > 1<<53)
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return scalar("!!int", strconv.FormatInt(val.Int(), 10))
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return scalar("!!int", strconv.FormatUint(val.Uint(), 10))
	}
	return text(val.String())
}

// wellKnown writes the well-known types as their JSON form (a Timestamp
// as RFC 3339 text, a Struct as any mapping, an Any with its "@type").
func (v values) wellKnown(m protoreflect.Message) (*yaml.Node, bool) {
	if !strings.HasPrefix(string(m.Descriptor().FullName()), "google.protobuf.") {
		return nil, false
	}
	data, err := protojson.MarshalOptions{UseProtoNames: true, Resolver: anyResolver{v.types}}.Marshal(m.Interface())
	if err != nil {
		return nil, false
	}
	var j any
	if err := json.Unmarshal(data, &j); err != nil {
		return nil, false
	}
	return jsonNode(j), true
}

// jsonNode turns a decoded JSON value into a node.
func jsonNode(j any) *yaml.Node {
	switch x := j.(type) {
	case map[string]any:
		out := mapping()
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			addPair(out, k, jsonNode(x[k]))
		}
		flowIfSmall(out)
		return out
	case []any:
		out := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for _, e := range x {
			out.Content = append(out.Content, jsonNode(e))
		}
		flowIfSmall(out)
		return out
	case string:
		return text(x)
	case bool:
		return scalar("!!bool", strconv.FormatBool(x))
	case float64:
		return scalar("!!float", strconv.FormatFloat(x, 'g', -1, 64))
	case nil:
		return scalar("!!null", "null")
	}
	return text(fmt.Sprint(j))
}

// bytesNode writes bytes as text when they are printable UTF-8, else as
// {base64: ...}.
func bytesNode(b []byte) *yaml.Node {
	if printable(b) {
		return text(string(b))
	}
	out := mapping()
	addPair(out, "base64", scalar("!!str", base64.StdEncoding.EncodeToString(b)))
	out.Style = yaml.FlowStyle
	return out
}

// printable reports whether b is UTF-8 text without control characters
// (a tab and a newline allowed).
func printable(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, r := range string(b) {
		if unicode.IsControl(r) && r != '\t' && r != '\n' {
			return false
		}
	}
	return true
}

// text is a string value with every `${` escaped.
func text(s string) *yaml.Node {
	return scalar("!!str", strings.ReplaceAll(s, "${", "$${"))
}

// intNode writes a 64-bit integer, as text when a JSON number would lose
// precision.
func intNode(s string, big bool) *yaml.Node {
	if big {
		return scalar("!!str", s)
	}
	return scalar("!!int", s)
}

func scalar(tag, value string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: value}
}

func mapping() *yaml.Node { return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"} }

func addPair(m *yaml.Node, key string, val *yaml.Node) {
	m.Content = append(m.Content, scalar("!!str", key), val)
}

// flowIfSmall writes a mapping or sequence on one line when it holds a few
// scalars only.
func flowIfSmall(n *yaml.Node) {
	const most, width = 6, 60
	items := n.Content
	if len(items) == 0 {
		n.Style = yaml.FlowStyle
		return
	}
	length := 0
	for _, c := range items {
		switch {
		case c.Kind == yaml.ScalarNode:
			length += len(c.Value) + 2
		case c.Style == yaml.FlowStyle && len(c.Content) <= 2:
			for _, cc := range c.Content {
				length += len(cc.Value) + 4
			}
		default:
			return
		}
	}
	pairs := len(items)
	if n.Kind == yaml.MappingNode {
		pairs /= 2
	}
	if pairs <= most && length <= width {
		n.Style = yaml.FlowStyle
	}
}

// anyResolver resolves the types inside Any with the schema, then with
// the program's registry (which knows the google.rpc error details).
type anyResolver struct{ schema dynamic.TypeResolver }

func (r anyResolver) FindMessageByName(name protoreflect.FullName) (protoreflect.MessageType, error) {
	if r.schema != nil {
		if mt, err := r.schema.FindMessageByName(name); err == nil {
			return mt, nil
		}
	}
	return protoregistry.GlobalTypes.FindMessageByName(name)
}

func (r anyResolver) FindMessageByURL(url string) (protoreflect.MessageType, error) {
	if r.schema != nil {
		if mt, err := r.schema.FindMessageByURL(url); err == nil {
			return mt, nil
		}
	}
	return protoregistry.GlobalTypes.FindMessageByURL(url)
}

func (r anyResolver) FindExtensionByName(name protoreflect.FullName) (protoreflect.ExtensionType, error) {
	if r.schema != nil {
		if xt, err := r.schema.FindExtensionByName(name); err == nil {
			return xt, nil
		}
	}
	return protoregistry.GlobalTypes.FindExtensionByName(name)
}

func (r anyResolver) FindExtensionByNumber(message protoreflect.FullName, field protoreflect.FieldNumber) (protoreflect.ExtensionType, error) {
	if r.schema != nil {
		if xt, err := r.schema.FindExtensionByNumber(message, field); err == nil {
			return xt, nil
		}
	}
	return protoregistry.GlobalTypes.FindExtensionByNumber(message, field)
}

// withDefaults returns m as a mapping in which the top-level scalar fields
// that are not set are written too, with their default values: what an
// expectation of the answer must hold, where a reply may leave them out.
func (v values) withDefaults(m protoreflect.Message) *yaml.Node {
	out := v.message(m)
	if out.Kind != yaml.MappingNode {
		return out
	}
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if m.Has(fd) || fd.IsList() || fd.IsMap() || fd.Message() != nil || fd.ContainingOneof() != nil {
			continue
		}
		addPair(out, string(fd.Name()), v.single(fd, fd.Default()))
	}
	flowIfSmall(out)
	return out
}
