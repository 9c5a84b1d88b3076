package script

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// tfunc is a template function: `${meta.x | b64dec}`. Functions take one
// value (the one before the `|`) and are type-checked at load time.
type tfunc struct {
	name string
	in   []vtype // the types it takes besides typeAny (nil: every type)
	out  vtype
	run  func(v any) (any, error)
}

// accepts reports whether f takes a value of type t. A value whose type is
// known only at run time (typeAny) is accepted and checked when it runs.
func (f *tfunc) accepts(t vtype) bool {
	if f.in == nil || t == typeAny {
		return true
	}
	for _, in := range f.in {
		if in == t {
			return true
		}
	}
	return false
}

// inDoc names the input types for errors ("text or bytes").
func (f *tfunc) inDoc() string {
	names := make([]string, len(f.in))
	for i, t := range f.in {
		names[i] = t.String()
	}
	return strings.Join(names, " or ")
}

var textOrBytes = []vtype{typeText, typeBytes}

// tfuncs are the template functions, in the order docs/script.md lists
// them.
var tfuncs = []*tfunc{
	{name: "b64enc", in: textOrBytes, out: typeText, run: encodeWith(base64.StdEncoding.EncodeToString)},
	{name: "b64dec", in: textOrBytes, out: typeBytes, run: decodeWith(base64.StdEncoding)},
	{name: "b64urlenc", in: textOrBytes, out: typeText, run: encodeWith(base64.URLEncoding.EncodeToString)},
	{name: "b64urldec", in: textOrBytes, out: typeBytes, run: decodeWith(base64.URLEncoding)},
	{name: "hexenc", in: textOrBytes, out: typeText, run: encodeWith(hex.EncodeToString)},
	{name: "hexdec", in: textOrBytes, out: typeBytes, run: hexDecode},
	{name: "sha1", in: textOrBytes, out: typeBytes, run: hashWith(func(b []byte) []byte { s := sha1.Sum(b); return s[:] })},
	{name: "sha256", in: textOrBytes, out: typeBytes, run: hashWith(func(b []byte) []byte { s := sha256.Sum256(b); return s[:] })},
	{name: "fromjson", in: textOrBytes, out: typeAny, run: parseJSONValue},
	{name: "tojson", out: typeText, run: writeJSONValue},
}

func lookupFunc(name string) *tfunc {
	for _, f := range tfuncs {
		if f.name == name {
			return f
		}
	}
	return nil
}

func funcNameList() []string {
	out := make([]string, len(tfuncs))
	for i, f := range tfuncs {
		out[i] = f.name
	}
	return out
}

func funcNames() string { return strings.Join(funcNameList(), ", ") }

// rawOf is the bytes a text or bytes value holds.
func rawOf(v any) ([]byte, error) {
	switch x := v.(type) {
	case string:
		return []byte(x), nil
	case bytesVal:
		return x, nil
	}
	return nil, fmt.Errorf("takes text or bytes, got %s", show(v))
}

func encodeWith(enc func([]byte) string) func(any) (any, error) {
	return func(v any) (any, error) {
		b, err := rawOf(v)
		if err != nil {
			return nil, err
		}
		return enc(b), nil
	}
}

// decodeWith decodes base64 in enc's alphabet, with or without padding.
func decodeWith(enc *base64.Encoding) func(any) (any, error) {
	return func(v any) (any, error) {
		b, err := rawOf(v)
		if err != nil {
			return nil, err
		}
		s := strings.TrimRight(string(b), "=")
		out, err := enc.WithPadding(base64.NoPadding).DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not base64: %w", string(b), err)
		}
		return bytesVal(out), nil
	}
}

func hexDecode(v any) (any, error) {
	b, err := rawOf(v)
	if err != nil {
		return nil, err
	}
	out, err := hex.DecodeString(string(b))
	if err != nil {
		return nil, fmt.Errorf("%q is not hex: %w", string(b), err)
	}
	return bytesVal(out), nil
}

func hashWith(sum func([]byte) []byte) func(any) (any, error) {
	return func(v any) (any, error) {
		b, err := rawOf(v)
		if err != nil {
			return nil, err
		}
		return bytesVal(sum(b)), nil
	}
}

// parseJSONValue parses one JSON value (numbers stay exact, as json.Number).
func parseJSONValue(v any) (any, error) {
	b, err := rawOf(v)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out any
	if err := dec.Decode(&out); err != nil {
		return nil, fmt.Errorf("%s is not JSON: %w", show(string(b)), err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s is not one JSON value: there is more after it", show(string(b)))
	}
	return out, nil
}

// writeJSONValue writes a value as compact JSON (bytes as base64, as protojson).
func writeJSONValue(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}
