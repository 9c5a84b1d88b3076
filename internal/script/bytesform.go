package script

import (
	"encoding/hex"
	"fmt"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Scripts write text by default: a bytes field given "main" holds the four
// bytes of "main", as Gitaly's ref and branch names are bytes that people
// read as text. Raw bytes have explicit forms, accepted wherever a value
// is written (messages, metadata, matchers, vars):
//
//	!!binary "3q2+7w=="      YAML's own binary tag (standard base64)
//	{base64: "3q2-7w"}      base64, standard or URL alphabet, padding optional
//	{hex: "deadbeef"}       hexadecimal, either case
//
// A copy of bcctl's or grpcurl's output (protobuf JSON, bytes as base64)
// goes into a script as {base64: ...}.

// bytesFormKeys are the keys of the mapping forms, as docs/script.md and
// the JSON Schema list them.
var bytesFormKeys = []string{"base64", "hex"}

// isBytesForm reports whether n is written in one of the raw-bytes forms
// (well formed or not).
func isBytesForm(n *yaml.Node) bool {
	n = deref(n)
	if n == nil {
		return false
	}
	if n.Kind == yaml.ScalarNode {
		return n.ShortTag() == "!!binary"
	}
	if n.Kind != yaml.MappingNode || len(n.Content) != 2 {
		return false
	}
	k := deref(n.Content[0])
	return k.Kind == yaml.ScalarNode && (k.Value == "base64" || k.Value == "hex")
}

// rawBytes decodes a raw-bytes form; it must only be called when
// isBytesForm(n) holds.
func rawBytes(n *yaml.Node) ([]byte, error) {
	n = deref(n)
	if n.Kind == yaml.ScalarNode { // !!binary
		b, err := decodeBase64(strings.Join(strings.Fields(n.Value), ""))
		if err != nil {
			return nil, fmt.Errorf("!!binary %q is not base64", n.Value)
		}
		return b, nil
	}
	form := deref(n.Content[0]).Value
	v := deref(n.Content[1])
	if v == nil || v.Kind != yaml.ScalarNode || isNull(v) {
		return nil, fmt.Errorf("{%s: ...} takes a string, not %s", form, describeNode(v))
	}
	if hasTemplate(v.Value) {
		return nil, fmt.Errorf("{%s: ...} is a literal; to decode a value at run time write ${... | %s}", form, map[string]string{"base64": "b64dec", "hex": "hexdec"}[form])
	}
	s := strings.Join(strings.Fields(v.Value), "")
	if form == "hex" {
		b, err := hex.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("{hex: %q} is not hexadecimal: %w", v.Value, err)
		}
		return b, nil
	}
	b, err := decodeBase64(s)
	if err != nil {
		return nil, fmt.Errorf("{base64: %q} is not base64: %w", v.Value, err)
	}
	return b, nil
}

// rawText decodes a raw-bytes form that must hold UTF-8 text (a string
// field).
func rawText(n *yaml.Node) (string, error) {
	b, err := rawBytes(n)
	if err != nil {
		return "", err
	}
	if !utf8.Valid(b) {
		return "", fmt.Errorf("a string holds UTF-8 text, and these bytes (%s) are not", hex.EncodeToString(b))
	}
	return string(b), nil
}

// printableASCII reports whether b may be the value of a metadata key that
// does not end in -bin.
func printableASCII(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}
