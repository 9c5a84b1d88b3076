package dynamic

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// BytesMode says how JSON output shows bytes fields.
type BytesMode string

// The ways bcctl shows bytes fields.
const (
	// BytesBase64 is protobuf JSON's way (and grpcurl's): standard base64.
	BytesBase64 BytesMode = "base64"
	// BytesText shows bytes that are UTF-8 text as that text, and other
	// bytes as base64: Gitaly's ref and branch names read as themselves.
	BytesText BytesMode = "text"
)

// ParseBytesMode returns the BytesMode named s ("base64" or "text"; ""
// means base64).
func ParseBytesMode(s string) (BytesMode, error) {
	switch m := BytesMode(strings.ToLower(strings.TrimSpace(s))); m {
	case "", BytesBase64:
		return BytesBase64, nil
	case BytesText:
		return m, nil
	}
	return "", fmt.Errorf("dynamic: unknown bytes mode %q (want base64 or text)", s)
}

// BytesAsText rewrites data, the protojson form of a message of type md,
// so that bytes fields holding UTF-8 text show that text instead of its
// base64; bytes that are not UTF-8 stay base64. Field order is kept and
// the result is compact. resolver resolves the types inside
// google.protobuf.Any (nil means protoregistry.GlobalTypes). Data that is
// not JSON is returned as it is.
func BytesAsText(data []byte, md protoreflect.MessageDescriptor, resolver TypeResolver) []byte {
	w := &bytesTexter{dec: json.NewDecoder(bytes.NewReader(data)), types: orGlobal(resolver)}
	w.dec.UseNumber()
	if err := w.value(jsonTarget{md: md}); err != nil {
		return data
	}
	return w.out.Bytes()
}

// jsonTarget is what a JSON value stands for while BytesAsText walks it:
// a message (md), a bytes value, a map whose values are mapOf, or
// anything else (zero: copied as it is).
type jsonTarget struct {
	md    protoreflect.MessageDescriptor
	bytes bool
	mapOf *jsonTarget
}

// fieldTarget is the target of fd's JSON value.
func fieldTarget(fd protoreflect.FieldDescriptor) jsonTarget {
	if fd.IsMap() {
		v := kindTarget(fd.MapValue())
		return jsonTarget{mapOf: &v}
	}
	return kindTarget(fd) // a list's elements have the field's kind
}

func kindTarget(fd protoreflect.FieldDescriptor) jsonTarget {
	switch fd.Kind() {
	case protoreflect.BytesKind:
		return jsonTarget{bytes: true}
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return messageTarget(fd.Message())
	}
	return jsonTarget{}
}

func messageTarget(md protoreflect.MessageDescriptor) jsonTarget {
	if md.FullName() == "google.protobuf.BytesValue" {
		return jsonTarget{bytes: true} // written as the bare value
	}
	return jsonTarget{md: md}
}

// bytesTexter copies JSON tokens to out, rewriting bytes values.
type bytesTexter struct {
	dec   *json.Decoder
	out   bytes.Buffer
	types TypeResolver
}

func (w *bytesTexter) value(t jsonTarget) error {
	tok, err := w.dec.Token()
	if err != nil {
		return err
	}
	switch x := tok.(type) {
	case json.Delim:
		switch x {
		case '[':
			return w.array(t)
		case '{':
			return w.object(t)
		}
		return fmt.Errorf("unexpected %v", x)
	case string:
		if t.bytes {
			if b, err := base64.StdEncoding.DecodeString(x); err == nil && utf8.Valid(b) {
				x = string(b)
			}
		}
		return w.write(x)
	}
	return w.write(tok)
}

// write writes one JSON token as protojson does (no HTML escapes).
func (w *bytesTexter) write(v any) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	w.out.Write(bytes.TrimSuffix(b.Bytes(), []byte{'\n'}))
	return nil
}

// array walks a list: every element has the list's target.
func (w *bytesTexter) array(t jsonTarget) error {
	w.out.WriteByte('[')
	for i := 0; w.dec.More(); i++ {
		if i > 0 {
			w.out.WriteByte(',')
		}
		if err := w.value(t); err != nil {
			return err
		}
	}
	return w.close(']')
}

// object walks a message (fields by JSON or proto name), a map, an Any
// (protojson writes its "@type" first) or free-form JSON.
func (w *bytesTexter) object(t jsonTarget) error {
	w.out.WriteByte('{')
	md := t.md
	var anyValue *jsonTarget // an Any holding a well-known type keeps it under "value"
	for i := 0; w.dec.More(); i++ {
		if i > 0 {
			w.out.WriteByte(',')
		}
		tok, err := w.dec.Token()
		if err != nil {
			return err
		}
		key, _ := tok.(string)
		if err := w.write(key); err != nil {
			return err
		}
		w.out.WriteByte(':')
		var child jsonTarget
		switch {
		case t.mapOf != nil:
			child = *t.mapOf
		case anyValue != nil:
			if key == "value" {
				child = *anyValue
			}
		case md == nil:
		case md.FullName() == "google.protobuf.Any" && key == "@type":
			tok, err := w.dec.Token()
			if err != nil {
				return err
			}
			url, _ := tok.(string)
			md = nil
			if mt, err := w.types.FindMessageByURL(url); err == nil {
				if inner := mt.Descriptor(); specialJSON(inner) {
					v := messageTarget(inner)
					anyValue = &v
				} else {
					md = inner
				}
			}
			if err := w.write(url); err != nil {
				return err
			}
			continue
		case specialJSON(md):
			// Timestamp, Struct, ...: protojson writes no bytes below them.
		default:
			if fd := fieldByJSONKey(md, key); fd != nil {
				child = fieldTarget(fd)
			}
		}
		if err := w.value(child); err != nil {
			return err
		}
	}
	return w.close('}')
}

func (w *bytesTexter) close(want json.Delim) error {
	tok, err := w.dec.Token()
	if err != nil {
		return err
	}
	if tok != want {
		return errors.New("unbalanced JSON")
	}
	w.out.WriteByte(byte(want))
	return nil
}

// fieldByJSONKey finds the field protojson wrote under key (the JSON name,
// or the proto name with UseProtoNames).
func fieldByJSONKey(md protoreflect.MessageDescriptor, key string) protoreflect.FieldDescriptor {
	if fd := md.Fields().ByJSONName(key); fd != nil {
		return fd
	}
	return md.Fields().ByName(protoreflect.Name(key))
}

// specialJSON reports the google.protobuf types that protojson writes in a
// form of their own rather than as an object of their fields.
func specialJSON(md protoreflect.MessageDescriptor) bool {
	switch md.FullName() {
	case "google.protobuf.Any", "google.protobuf.Timestamp", "google.protobuf.Duration",
		"google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue",
		"google.protobuf.FieldMask", "google.protobuf.DoubleValue", "google.protobuf.FloatValue",
		"google.protobuf.Int64Value", "google.protobuf.UInt64Value", "google.protobuf.Int32Value",
		"google.protobuf.UInt32Value", "google.protobuf.BoolValue", "google.protobuf.StringValue",
		"google.protobuf.BytesValue":
		return true
	}
	return false
}
