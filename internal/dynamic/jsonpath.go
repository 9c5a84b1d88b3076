package dynamic

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

// FieldError is a JSON value that does not fit a message, located by its
// field path: "user.repositories[0].storage_name", "user.labels[team]".
type FieldError struct {
	// Path is the JSON field path, as the input spelled the names.
	Path string
	// Message says what is wrong with the value at Path.
	Message string
	// Err is protojson's error, when protojson reported it.
	Err error
}

// Error returns `field "path": message`.
func (e *FieldError) Error() string { return fmt.Sprintf("field %q: %s", e.Path, e.Message) }

// Unwrap returns protojson's error.
func (e *FieldError) Unwrap() error { return e.Err }

// explainJSONError turns protojson's error for data into a *FieldError
// naming the path of the first field that fails on its own. When no single
// field is to blame (say two members of a oneof are set), err is returned
// with its position relative to the value.
func explainJSONError(data []byte, msg proto.Message, opts protojson.UnmarshalOptions, err error) error {
	if fe := locateJSONError(data, msg.ProtoReflect().Descriptor(), "", opts); fe != nil {
		return fe
	}
	return err
}

var protojsonPrefix = regexp.MustCompile(`^proto:\s*(\(line \d+:\d+\):\s*)?`)

// cleanProtoJSONError drops protojson's "proto: (line 1:9): " prefix,
// whose position refers to the probe document, not to the user's input.
func cleanProtoJSONError(err error) string {
	return protojsonPrefix.ReplaceAllString(strings.ReplaceAll(err.Error(), "\u00a0", " "), "")
}

func joinPath(base, name string) string {
	if base == "" {
		return name
	}
	return base + "." + name
}

// locateJSONError finds the first field of the JSON object data that does
// not fit md on its own, descending into nested messages, lists and maps.
// It returns nil when it cannot blame a single field.
func locateJSONError(data []byte, md protoreflect.MessageDescriptor, path string, opts protojson.UnmarshalOptions) *FieldError {
	if md.FullName().Parent() == "google.protobuf" {
		// Well-known types have their own JSON forms: blame the value.
		if err := opts.Unmarshal(data, dynamicpb.NewMessage(md)); err != nil && path != "" {
			return &FieldError{Path: path, Message: cleanProtoJSONError(err), Err: err}
		}
		return nil
	}
	keys, values, err := objectEntries(data)
	if err != nil {
		if path == "" {
			return nil
		}
		return &FieldError{Path: path, Message: fmt.Sprintf("want a JSON object for %s, got %s", md.FullName(), jsonKind(data))}
	}
	for i, key := range keys {
		fieldPath := joinPath(path, key)
		fd := md.Fields().ByJSONName(key)
		if fd == nil {
			fd = md.Fields().ByTextName(key)
		}
		if fd == nil {
			return &FieldError{Path: fieldPath, Message: fmt.Sprintf("unknown field %q in %s (fields: %s)", key, md.FullName(), fieldList(md))}
		}
		probe, _ := json.Marshal(map[string]json.RawMessage{key: values[i]})
		perr := opts.Unmarshal(probe, dynamicpb.NewMessage(md))
		if perr == nil {
			continue
		}
		if fe := locateInField(values[i], fd, fieldPath, opts); fe != nil {
			return fe
		}
		return &FieldError{Path: fieldPath, Message: cleanProtoJSONError(perr), Err: perr}
	}
	return nil
}

// locateInField descends into a field's value when the field holds
// messages.
func locateInField(value []byte, fd protoreflect.FieldDescriptor, path string, opts protojson.UnmarshalOptions) *FieldError {
	switch {
	case fd.IsMap():
		vd := fd.MapValue()
		keys, values, err := objectEntries(value)
		if err != nil || vd.Message() == nil {
			return nil
		}
		for i, k := range keys {
			if fe := locateJSONError(values[i], vd.Message(), fmt.Sprintf("%s[%s]", path, k), opts); fe != nil {
				return fe
			}
		}
	case fd.IsList():
		var elems []json.RawMessage
		if fd.Message() == nil || json.Unmarshal(value, &elems) != nil {
			return nil
		}
		for i, e := range elems {
			if fe := locateJSONError(e, fd.Message(), fmt.Sprintf("%s[%d]", path, i), opts); fe != nil {
				return fe
			}
		}
	case fd.Message() != nil:
		if bytes.Equal(bytes.TrimSpace(value), []byte("null")) {
			return nil
		}
		return locateJSONError(value, fd.Message(), path, opts)
	}
	return nil
}

// objectEntries returns the keys and values of a JSON object in input order.
func objectEntries(data []byte) ([]string, []json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, nil, errNotJSONObject
	}
	var keys []string
	var values []json.RawMessage
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, err
		}
		key, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, nil, err
		}
		keys = append(keys, key)
		values = append(values, v)
	}
	return keys, values, nil
}

func jsonKind(data []byte) string {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return "nothing"
	}
	switch data[0] {
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}

func fieldList(md protoreflect.MessageDescriptor) string {
	fields := md.Fields()
	names := make([]string, fields.Len())
	for i := range fields.Len() {
		names[i] = fields.Get(i).JSONName()
	}
	return strings.Join(names, ", ")
}
