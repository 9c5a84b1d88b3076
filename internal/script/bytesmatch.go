package script

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"strconv"
	"unicode/utf8"

	"google.golang.org/protobuf/reflect/protoreflect"
	"gopkg.in/yaml.v3"
)

// bytesEqMatcher holds when a bytes value is exactly want: the explicit
// raw-bytes forms ({hex: ...}, {base64: ...}, !!binary) in a matcher.
type bytesEqMatcher struct {
	path string
	want []byte
}

func (m bytesEqMatcher) match(v any, _ bool) (bool, string) {
	got, ok := bytesOfValue(v)
	if ok && bytes.Equal(got, m.want) {
		return true, ""
	}
	if !ok {
		return false, fmt.Sprintf("%s is %s, want %s", m.path, show(v), showBytes(m.want))
	}
	return false, fmt.Sprintf("%s is %s, want %s", m.path, showBytes(got), showBytes(m.want))
}

// bytesOfValue is the bytes of a matched value: bytesVal from a template,
// or the base64 string protojson writes for a bytes field.
func bytesOfValue(v any) ([]byte, bool) {
	switch x := v.(type) {
	case bytesVal:
		return x, true
	case string:
		b, err := decodeBase64(x)
		return b, err == nil
	case nil:
		return nil, true
	}
	return nil, false
}

// showBytes formats bytes for a message: quoted text when they are
// printable UTF-8, else the hex form a script would write.
func showBytes(b []byte) string {
	if isPrintableText(b) {
		return strconv.Quote(string(b))
	}
	return fmt.Sprintf("{hex: %s}", hex.EncodeToString(b))
}

// isPrintableText reports bytes that are UTF-8 text without control
// characters.
func isPrintableText(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, r := range string(b) {
		if !strconv.IsPrint(r) {
			return false
		}
	}
	return true
}

// bytesLiteral compiles a raw-bytes form where one is allowed: at a bytes
// field (exact bytes), a string field or metadata value (its text), and in
// `where` conditions on bytes. It returns nil when n is not such a form.
func (c *matchCompiler) bytesLiteral(n *yaml.Node, t mtarget, path string) matcher {
	if !isBytesForm(n) {
		return nil
	}
	var kind protoreflect.Kind
	switch {
	case t.str:
		kind = protoreflect.StringKind
	case t.fd != nil && !t.whole && t.md == nil:
		kind = t.fd.Kind()
	default:
		return nil // free-form data: a mapping such as {hex: x} is just that
	}
	b, err := rawBytes(n)
	if err != nil {
		c.errorf(n, "%s: %v", path, err)
		return allMatcher{}
	}
	switch kind {
	case protoreflect.BytesKind:
		return bytesEqMatcher{path: path, want: b}
	case protoreflect.StringKind:
		if !t.str && !utf8.Valid(b) {
			c.errorf(n, "%s: a string holds UTF-8 text, and these bytes (%s) are not", path, hex.EncodeToString(b))
			return allMatcher{}
		}
		return eqMatcher{path: path, want: string(b), kind: cmpString}
	}
	c.errorf(n, "%s is a %s: raw bytes (!!binary, {base64: ...}, {hex: ...}) match only bytes and string fields", path, kindName(t.fd))
	return allMatcher{}
}
