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

// ref is one `${root.path}` reference, checked at load time.
type ref struct {
	src   string
	root  string
	steps []pathStep
	bytes bool // the path ends at a bytes value (evaluates to bytesVal)
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

// constant reports whether the template has no references.
func (t *template) constant() bool {
	for _, p := range t.parts {
		if p.ref != nil {
			return false
		}
	}
	return true
}

// literal is the text of a constant template (with `$${` unescaped).
func (t *template) literal() string {
	var b strings.Builder
	for _, p := range t.parts {
		b.WriteString(p.lit)
	}
	return b.String()
}

var rootName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// hasTemplate reports whether s contains a reference (not counting `$${`).
func hasTemplate(s string) bool {
	for i := 0; i+1 < len(s); i++ {
		if s[i] == '$' && s[i+1] == '$' {
			i++
			continue
		}
		if s[i] == '$' && s[i+1] == '{' {
			return true
		}
	}
	return false
}

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
			segs := strings.Split(expr, ".")
			for _, seg := range segs {
				if seg == "" || strings.ContainsAny(seg, " \t\n{$") {
					return nil, fmt.Errorf("template %q: bad reference ${%s}: write a path like req.field.sub", s, expr)
				}
			}
			if !rootName.MatchString(segs[0]) {
				return nil, fmt.Errorf("template %q: bad reference ${%s}: %q is not a name", s, expr, segs[0])
			}
			if lit.Len() > 0 {
				t.parts = append(t.parts, tpart{lit: lit.String()})
				lit.Reset()
			}
			r := &ref{src: expr, root: segs[0]}
			for _, seg := range segs[1:] {
				r.steps = append(r.steps, pathStep{key: seg, index: -1})
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
	captures map[string]protoreflect.MessageDescriptor // results of earlier `call ... as`
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
		out = append(out, "n", "meta")
	}
	if e.peer {
		out = append(out, "peer")
	}
	out = append(out, "vars", "env", "now", "uuid")
	var caps []string
	for k := range e.captures {
		caps = append(caps, k)
	}
	sort.Strings(caps)
	return append(out, caps...)
}

// check resolves every reference of t against e, normalizing field names
// to the protojson (proto) names that requests are rendered with.
func (e *tenv) check(t *template) error {
	for _, p := range t.parts {
		if p.ref != nil {
			if err := e.checkRef(p.ref); err != nil {
				return fmt.Errorf("${%s}: %w", p.ref.src, err)
			}
		}
	}
	return nil
}

func (e *tenv) checkRef(r *ref) error {
	noPath := func() error {
		if len(r.steps) > 0 {
			return fmt.Errorf("%s has no fields", r.root)
		}
		return nil
	}
	unavailable := func(why string) error {
		return fmt.Errorf("%q is not available here (%s); available: %s", r.root, why, strings.Join(e.roots(), ", "))
	}
	switch r.root {
	case "req":
		if e.input == nil {
			return unavailable("no request")
		}
		var err error
		r.bytes, err = fieldPath(e.input, r.steps, "req")
		return err
	case "reqs":
		if !e.stream {
			return unavailable("only in each/end of client and bidi streams")
		}
		if len(r.steps) == 0 {
			return nil
		}
		if err := setIndex(&r.steps[0], "reqs"); err != nil {
			return err
		}
		var err error
		r.bytes, err = fieldPath(e.input, r.steps[1:], "reqs."+r.steps[0].key)
		return err
	case "i":
		if !e.stream {
			return unavailable("only in each/end of client and bidi streams")
		}
		return noPath()
	case "n", "meta":
		if !e.call {
			return unavailable("no call is being answered")
		}
		if r.root == "n" {
			return noPath()
		}
		if len(r.steps) > 1 {
			return fmt.Errorf("meta takes one key, as in meta.x-request-id")
		}
		if len(r.steps) == 1 {
			r.steps[0].key = strings.ToLower(r.steps[0].key)
		}
		return nil
	case "peer":
		if !e.peer {
			return unavailable("no peer")
		}
		return checkPeerPath(r.steps, "peer")
	case "vars":
		return checkFreePath(e.vars, r.steps, "vars")
	case "env":
		if len(r.steps) != 1 {
			return fmt.Errorf("env takes one variable name, as in env.HOME")
		}
		return nil
	case "now", "uuid":
		return noPath()
	}
	if out, ok := e.captures[r.root]; ok {
		var err error
		r.bytes, err = checkCapturePath(out, r.steps, r.root)
		return err
	}
	return fmt.Errorf("unknown name %q%s", r.root, words.DidYouMean(r.root, e.roots()))
}

// Fields of a captured call result (see docs/script.md, "call").
var captureFields = []string{"code", "message", "reply", "ok", "peer", "count", "failed", "calls"}

func checkCapturePath(out protoreflect.MessageDescriptor, steps []pathStep, at string) (bool, error) {
	if len(steps) == 0 {
		return false, nil
	}
	switch steps[0].key {
	case "code", "message", "ok", "count", "failed":
		if len(steps) > 1 {
			return false, fmt.Errorf("%s.%s has no fields", at, steps[0].key)
		}
		return false, nil
	case "peer":
		return false, checkPeerPath(steps[1:], at+".peer")
	case "reply":
		return fieldPath(out, steps[1:], at+".reply")
	case "calls":
		if len(steps) == 1 {
			return false, nil
		}
		if err := setIndex(&steps[1], at+".calls"); err != nil {
			return false, err
		}
		return checkCapturePath(out, steps[2:], at+".calls."+steps[1].key)
	}
	return false, fmt.Errorf("%s has no field %q; fields: %s", at, steps[0].key, strings.Join(captureFields, ", "))
}

func checkPeerPath(steps []pathStep, at string) error {
	if len(steps) == 0 {
		return nil
	}
	if len(steps) > 1 || (steps[0].key != "id" && steps[0].key != "addr") {
		return fmt.Errorf("%s has fields id and addr", at)
	}
	return nil
}

func setIndex(s *pathStep, at string) error {
	n, err := strconv.Atoi(s.key)
	if err != nil || n < 0 {
		return fmt.Errorf("%s is a list: select an element by number, not %q", at, s.key)
	}
	s.index = n
	return nil
}

// checkFreePath checks a path into plain YAML data (vars) as far as the data
// goes.
func checkFreePath(v any, steps []pathStep, at string) error {
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
				return fmt.Errorf("%s has no key %q%s", at, steps[i].key, words.DidYouMean(steps[i].key, keys))
			}
			v = next
		case []any:
			if err := setIndex(&steps[i], at); err != nil {
				return err
			}
			if steps[i].index >= len(x) {
				return fmt.Errorf("%s has %d elements, no element %d", at, len(x), steps[i].index)
			}
			v = x[steps[i].index]
		default:
			return fmt.Errorf("%s is not a mapping or list", at)
		}
		at += "." + steps[i].key
	}
	return nil
}

// checkFieldPath resolves a path of field names through md, accepting both
// JSON and proto names and rewriting them to proto names.
func checkFieldPath(md protoreflect.MessageDescriptor, steps []pathStep, at string) error {
	_, err := fieldPath(md, steps, at)
	return err
}

// fieldPath is checkFieldPath that also reports whether the path ends at a
// single bytes value.
func fieldPath(md protoreflect.MessageDescriptor, steps []pathStep, at string) (bool, error) {
	isBytes := false
	for i := 0; i < len(steps); i++ {
		if md == nil || isWellKnown(md) {
			return false, nil // free-form JSON below here (Struct, Any, ...)
		}
		fd := findField(md, steps[i].key)
		if fd == nil {
			return false, fmt.Errorf("%s (%s) has no field %q%s", at, md.FullName(), steps[i].key, words.DidYouMean(steps[i].key, fieldNames(md)))
		}
		steps[i].key = string(fd.Name())
		steps[i].fd = fd
		at += "." + steps[i].key
		elem := fd
		switch {
		case fd.IsMap():
			elem = fd.MapValue()
			isBytes = false
			if i+1 < len(steps) {
				i++
				steps[i].fd = elem
				at += "." + steps[i].key
				isBytes = elem.Kind() == protoreflect.BytesKind
			}
		case fd.IsList():
			isBytes = false
			if i+1 < len(steps) {
				i++
				if err := setIndex(&steps[i], at); err != nil {
					return false, err
				}
				at += "." + steps[i].key
				isBytes = fd.Kind() == protoreflect.BytesKind
			}
		default:
			isBytes = fd.Kind() == protoreflect.BytesKind
		}
		md = elem.Message()
		if md == nil && i+1 < len(steps) {
			return false, fmt.Errorf("%s is a %s; it has no fields", at, elem.Kind())
		}
	}
	return isBytes, nil
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
