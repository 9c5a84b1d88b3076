package script

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/bcctl/bcctl/internal/words"
)

// template is a string with `${...}` references. A template that is exactly
// one reference ("${req.id}") evaluates to the referenced value with its
// type; otherwise the references are interpolated as text.
type template struct {
	src   string
	parts []tpart
}

// tpart is a literal run or a reference.
type tpart struct {
	lit string
	ref *ref
}

// ref is one `${root.path | fn ...}` expression, checked at load time.
type ref struct {
	src    string
	root   string
	steps  []pathStep
	typ    vtype   // of root.path (set by check; typeBytes evaluates to bytesVal)
	stages []stage // the functions after `|`, in order
	out    vtype   // of the whole expression, after the stages
}

// bytesVal is the value of a bytes field read by a reference: it reads as
// UTF-8 text when interpolated (base64 when it is not valid UTF-8), fills a
// bytes field exactly, and is base64 in JSON (as protojson writes bytes).
type bytesVal []byte

// MarshalJSON writes the bytes as a base64 string.
func (b bytesVal) MarshalJSON() ([]byte, error) {
	return json.Marshal(base64.StdEncoding.EncodeToString(b))
}

// pathStep selects a map key or list index; fd, when known, gives the value
// to use when the key is absent (protojson leaves out default values).
type pathStep struct {
	key   string
	index int // >= 0 for list indexes
	fd    protoreflect.FieldDescriptor
}

// whole reports whether the template is a single reference.
func (t *template) whole() bool { return len(t.parts) == 1 && t.parts[0].ref != nil }

var rootName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// hasTemplate reports whether s contains a reference (not counting `$${`,
// which is a literal `${`). It reads s as parseTemplate does.
func hasTemplate(s string) bool {
	for i := 0; i+1 < len(s); i++ {
		if s[i] == '$' && strings.HasPrefix(s[i+1:], "${") {
			i += 2
			continue
		}
		if s[i] == '$' && s[i+1] == '{' {
			return true
		}
	}
	return false
}

// unescape returns the text of s, a string that holds no reference: every
// `$${` in it is a literal `${`, as in a template. Every string of a
// script is read so, templates or not, values or matchers, so that any
// text can be written (bcctl proxy --record writes each `${` it saw as
// `$${`).
func unescape(s string) string { return strings.ReplaceAll(s, "$${", "${") }

// parseTemplate splits s into literal runs and references. `$${` writes a
// literal `${`.
func parseTemplate(s string) (*template, error) {
	t := &template{src: s}
	var lit strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '$' && strings.HasPrefix(s[i+1:], "${") {
			lit.WriteString("${")
			i += 2
			continue
		}
		if s[i] == '$' && i+1 < len(s) && s[i+1] == '{' {
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				return nil, fmt.Errorf("template %q: unclosed ${", s)
			}
			expr := strings.TrimSpace(s[i+2 : i+2+end])
			if expr == "" {
				return nil, fmt.Errorf("template %q: empty ${}", s)
			}
			r, err := parseExpr(expr)
			if err != nil {
				return nil, fmt.Errorf("${%s}: %w", expr, err)
			}
			if lit.Len() > 0 {
				t.parts = append(t.parts, tpart{lit: lit.String()})
				lit.Reset()
			}
			t.parts = append(t.parts, tpart{ref: r})
			i += 2 + end
			continue
		}
		lit.WriteByte(s[i])
	}
	if lit.Len() > 0 || len(t.parts) == 0 {
		t.parts = append(t.parts, tpart{lit: lit.String()})
	}
	return t, nil
}

// tenv is what templates may refer to at one place in a script.
type tenv struct {
	input    protoreflect.MessageDescriptor            // req; nil where there is no request
	call     bool                                      // meta, n (a call is being answered)
	stream   bool                                      // reqs and i
	peer     bool                                      // peer.*
	matching bool                                      // match.where: meta without n
	captures map[string]protoreflect.MessageDescriptor // results of earlier `call ... as`
	data     map[string]protoreflect.MessageDescriptor // plain captures (a sidechannel's body)
	vars     map[string]any
}

// withCapture returns a copy of e where name refers to a call result.
func (e *tenv) withCapture(name string, out protoreflect.MessageDescriptor) *tenv {
	c := *e
	c.captures = make(map[string]protoreflect.MessageDescriptor, len(e.captures)+1)
	for k, v := range e.captures {
		c.captures[k] = v
	}
	c.captures[name] = out
	return &c
}

// builtinRoots are the reference roots every script knows.
var builtinRoots = []string{"req", "reqs", "i", "n", "meta", "peer", "vars", "env", "now", "uuid"}

// roots lists the names a reference may start with here.
func (e *tenv) roots() []string {
	var out []string
	if e.input != nil {
		out = append(out, "req")
	}
	if e.stream {
		out = append(out, "reqs", "i")
	}
	if e.call {
		if !e.matching {
			out = append(out, "n")
		}
		out = append(out, "meta")
	}
	if e.peer {
		out = append(out, "peer")
	}
	out = append(out, "vars", "env", "now", "uuid")
	var caps []string
	for k := range e.captures {
		caps = append(caps, k)
	}
	for k := range e.data {
		caps = append(caps, k)
	}
	sort.Strings(caps)
	return append(out, caps...)
}

// check resolves every reference of t against e, normalizing field names
// to the protojson (proto) names that requests are rendered with, and
// type-checks the functions of each reference.
func (e *tenv) check(t *template) error {
	for _, p := range t.parts {
		if p.ref == nil {
			continue
		}
		err := e.checkRef(p.ref)
		if err == nil {
			err = p.ref.checkStages()
		}
		if err != nil {
			return fmt.Errorf("${%s}: %w", p.ref.src, err)
		}
	}
	return nil
}

// checkRef resolves r's path and sets its type.
func (e *tenv) checkRef(r *ref) error {
	var err error
	r.typ, err = e.pathType(r)
	return err
}

func (e *tenv) pathType(r *ref) (vtype, error) {
	noPath := func(t vtype) (vtype, error) {
		if len(r.steps) > 0 {
			return t, fmt.Errorf("%s has no fields", r.root)
		}
		return t, nil
	}
	unavailable := func(why string) (vtype, error) {
		return typeAny, fmt.Errorf("%q is not available here (%s); available: %s", r.root, why, strings.Join(e.roots(), ", "))
	}
	switch r.root {
	case "req":
		if e.input == nil {
			return unavailable("no request")
		}
		return fieldPath(e.input, r.steps, "req")
	case "reqs":
		if !e.stream {
			return unavailable("only in each/end of client and bidi streams")
		}
		if len(r.steps) == 0 {
			return typeList, nil
		}
		if err := setIndex(&r.steps[0], "reqs"); err != nil {
			return typeAny, err
		}
		return fieldPath(e.input, r.steps[1:], "reqs."+r.steps[0].key)
	case "i":
		if !e.stream {
			return unavailable("only in each/end of client and bidi streams")
		}
		return noPath(typeNumber)
	case "n", "meta":
		if !e.call {
			return unavailable("no call is being answered")
		}
		if r.root == "n" {
			if e.matching {
				return unavailable("n counts the calls a rule has answered, and a rule is matched before it answers")
			}
			return noPath(typeNumber)
		}
		if len(r.steps) > 1 {
			return typeAny, fmt.Errorf("meta takes one key, as in meta.x-request-id")
		}
		if len(r.steps) == 0 {
			return typeObject, nil
		}
		r.steps[0].key = strings.ToLower(r.steps[0].key)
		if isBinaryKey(r.steps[0].key) {
			return typeBytes, nil
		}
		return typeText, nil
	case "peer":
		if !e.peer {
			return unavailable("no peer")
		}
		return checkPeerPath(r.steps, "peer")
	case "vars":
		return checkFreePath(e.vars, r.steps, "vars")
	case "env":
		if len(r.steps) != 1 {
			return typeAny, fmt.Errorf("env takes one variable name, as in env.HOME")
		}
		return typeText, nil
	case "now", "uuid":
		return noPath(typeText)
	}
	if out, ok := e.captures[r.root]; ok {
		return checkCapturePath(out, r.steps, r.root)
	}
	if md, ok := e.data[r.root]; ok {
		return fieldPath(md, r.steps, r.root)
	}
	return typeAny, fmt.Errorf("unknown name %q%s", r.root, words.DidYouMean(r.root, e.roots()))
}

// isBinaryKey reports a metadata key whose values are raw bytes (gRPC
// base64-encodes them on the wire).
func isBinaryKey(key string) bool { return strings.HasSuffix(key, "-bin") }

// Fields of a captured call result (see docs/script.md, "call").
var captureFields = []string{"code", "message", "reply", "ok", "peer", "count", "failed", "calls"}

func checkCapturePath(out protoreflect.MessageDescriptor, steps []pathStep, at string) (vtype, error) {
	if len(steps) == 0 {
		return typeObject, nil
	}
	switch steps[0].key {
	case "code", "message", "ok", "count", "failed":
		if len(steps) > 1 {
			return typeAny, fmt.Errorf("%s.%s has no fields", at, steps[0].key)
		}
		switch steps[0].key {
		case "ok":
			return typeBool, nil
		case "count", "failed":
			return typeNumber, nil
		}
		return typeText, nil
	case "peer":
		return checkPeerPath(steps[1:], at+".peer")
	case "reply":
		return fieldPath(out, steps[1:], at+".reply")
	case "calls":
		if len(steps) == 1 {
			return typeList, nil
		}
		if err := setIndex(&steps[1], at+".calls"); err != nil {
			return typeAny, err
		}
		return checkCapturePath(out, steps[2:], at+".calls."+steps[1].key)
	}
	return typeAny, fmt.Errorf("%s has no field %q; fields: %s", at, steps[0].key, strings.Join(captureFields, ", "))
}

func checkPeerPath(steps []pathStep, at string) (vtype, error) {
	if len(steps) == 0 {
		return typeObject, nil
	}
	if len(steps) > 1 || (steps[0].key != "id" && steps[0].key != "addr") {
		return typeAny, fmt.Errorf("%s has fields id and addr", at)
	}
	if steps[0].key == "id" {
		return typeNumber, nil
	}
	return typeText, nil
}

func setIndex(s *pathStep, at string) error {
	n, err := strconv.Atoi(s.key)
	if err != nil || n < 0 {
		return fmt.Errorf("%s is a list: select an element by number, not %q", at, s.key)
	}
	s.index = n
	return nil
}

// checkFreePath checks a path into plain YAML data (vars) and returns the
// type of the value it reaches.
func checkFreePath(v any, steps []pathStep, at string) (vtype, error) {
	for i := range steps {
		switch x := v.(type) {
		case map[string]any:
			next, ok := x[steps[i].key]
			if !ok {
				keys := make([]string, 0, len(x))
				for k := range x {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				return typeAny, fmt.Errorf("%s has no key %q%s", at, steps[i].key, words.DidYouMean(steps[i].key, keys))
			}
			v = next
		case []any:
			if err := setIndex(&steps[i], at); err != nil {
				return typeAny, err
			}
			if steps[i].index >= len(x) {
				return typeAny, fmt.Errorf("%s has %d elements, no element %d", at, len(x), steps[i].index)
			}
			v = x[steps[i].index]
		default:
			return typeAny, fmt.Errorf("%s is not a mapping or list", at)
		}
		at += "." + steps[i].key
	}
	return typeOfData(v), nil
}

// typeOfData is the type of a constant (vars).
func typeOfData(v any) vtype {
	switch v.(type) {
	case string:
		return typeText
	case bytesVal:
		return typeBytes
	case json.Number:
		return typeNumber
	case bool:
		return typeBool
	case map[string]any:
		return typeObject
	case []any:
		return typeList
	}
	return typeAny
}

// fieldPath resolves a path of field names through md, accepting both
// JSON and proto names and rewriting them to proto names, and returns the
// type of the value the path reaches.
func fieldPath(md protoreflect.MessageDescriptor, steps []pathStep, at string) (vtype, error) {
	t := typeObject
	for i := 0; i < len(steps); i++ {
		if md == nil || isWellKnown(md) {
			return typeAny, nil // free-form JSON below here (Struct, Any, ...)
		}
		fd := findField(md, steps[i].key)
		if fd == nil {
			return typeAny, fmt.Errorf("%s (%s) has no field %q%s", at, md.FullName(), steps[i].key, words.DidYouMean(steps[i].key, fieldNames(md)))
		}
		steps[i].key = string(fd.Name())
		steps[i].fd = fd
		at += "." + steps[i].key
		elem := fd
		switch {
		case fd.IsMap():
			elem = fd.MapValue()
			t = typeObject
			if i+1 < len(steps) {
				i++
				steps[i].fd = elem
				at += "." + steps[i].key
				t = kindType(elem)
			}
		case fd.IsList():
			t = typeList
			if i+1 < len(steps) {
				i++
				if err := setIndex(&steps[i], at); err != nil {
					return typeAny, err
				}
				at += "." + steps[i].key
				t = kindType(fd)
			}
		default:
			t = kindType(fd)
		}
		md = elem.Message()
		if md == nil && i+1 < len(steps) {
			return typeAny, fmt.Errorf("%s is a %s; it has no fields", at, elem.Kind())
		}
	}
	if md != nil && isWellKnown(md) && t == typeObject {
		t = typeAny
	}
	return t, nil
}

// findField finds a field by proto name or JSON name.
func findField(md protoreflect.MessageDescriptor, name string) protoreflect.FieldDescriptor {
	if fd := md.Fields().ByName(protoreflect.Name(name)); fd != nil {
		return fd
	}
	if fd := md.Fields().ByJSONName(name); fd != nil {
		return fd
	}
	return md.Fields().ByTextName(name)
}

func fieldNames(md protoreflect.MessageDescriptor) []string {
	out := make([]string, md.Fields().Len())
	for i := range out {
		out[i] = string(md.Fields().Get(i).Name())
	}
	return out
}

// isWellKnown reports the google.protobuf types whose JSON form is not a
// plain object of their fields.
func isWellKnown(md protoreflect.MessageDescriptor) bool {
	switch md.FullName() {
	case "google.protobuf.Any", "google.protobuf.Timestamp", "google.protobuf.Duration",
		"google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue",
		"google.protobuf.FieldMask", "google.protobuf.DoubleValue", "google.protobuf.FloatValue",
		"google.protobuf.Int64Value", "google.protobuf.UInt64Value", "google.protobuf.Int32Value",
		"google.protobuf.UInt32Value", "google.protobuf.BoolValue", "google.protobuf.StringValue",
		"google.protobuf.BytesValue", "google.protobuf.NullValue":
		return true
	}
	return false
}

// defaultJSON is the protojson form of a field that protojson left out
// because it holds its default.
func defaultJSON(fd protoreflect.FieldDescriptor) any {
	switch {
	case fd.IsList():
		return []any{}
	case fd.IsMap():
		return map[string]any{}
	}
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		if isWellKnown(fd.Message()) {
			return nil
		}
		return map[string]any{}
	case protoreflect.EnumKind:
		n := fd.Default().Enum()
		if v := fd.Enum().Values().ByNumber(n); v != nil {
			return string(v.Name())
		}
		return json.Number(strconv.Itoa(int(n)))
	case protoreflect.StringKind:
		return fd.Default().String()
	case protoreflect.BytesKind:
		return ""
	case protoreflect.BoolKind:
		return fd.Default().Bool()
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return strconv.FormatInt(fd.Default().Int(), 10)
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return strconv.FormatUint(fd.Default().Uint(), 10)
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return floatJSON(fd.Default().Float())
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return json.Number(strconv.FormatInt(fd.Default().Int(), 10))
	default: // uint32, fixed32
		return json.Number(strconv.FormatUint(fd.Default().Uint(), 10))
	}
}

// walk follows steps from v; missing keys with a known field give the
// field's default, anything else missing gives nil.
func walk(v any, steps []pathStep) any {
	for _, s := range steps {
		switch x := v.(type) {
		case map[string]any:
			next, ok := x[s.key]
			if !ok {
				if s.fd == nil {
					return nil
				}
				next = defaultJSON(s.fd)
			}
			v = next
		case []any:
			idx := s.index
			if idx < 0 {
				n, err := strconv.Atoi(s.key)
				if err != nil {
					return nil
				}
				idx = n
			}
			if idx >= len(x) {
				return nil
			}
			v = x[idx]
		default:
			return nil
		}
	}
	return v
}

// stringify renders a value for interpolation into text.
func stringify(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bytesVal:
		if utf8.Valid(x) {
			return string(x)
		}
		return base64.StdEncoding.EncodeToString(x)
	case json.Number:
		return string(x)
	case bool:
		return strconv.FormatBool(x)
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case uint64:
		return strconv.FormatUint(x, 10)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
