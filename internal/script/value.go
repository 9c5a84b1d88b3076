package script

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
	"gopkg.in/yaml.v3"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/words"
)

// value is a compiled piece of YAML that renders to JSON-shaped data.
type value interface {
	render(s *scope) (any, error)
}

type constValue struct{ v any }

func (c constValue) render(*scope) (any, error) { return c.v, nil }

// coercion adapts a template's value to the field it fills, so that
// `name: "${req.id}"` gives a string field a string even though id is a
// number.
type coercion int

const (
	coerceNone   coercion = iota
	coerceString          // any scalar becomes its text
	coerceBool            // "true"/"false" become booleans
	coerceBytes           // text (or raw bytes) becomes base64 for a bytes field
)

type tmplValue struct {
	t      *template
	coerce coercion
}

func (v tmplValue) render(s *scope) (any, error) {
	x, err := s.render(v.t)
	if err != nil {
		return nil, err
	}
	switch v.coerce {
	case coerceString:
		if b, ok := x.(bytesVal); ok {
			return stringify(b), nil
		}
		switch x.(type) {
		case nil, string, map[string]any, []any:
			return x, nil
		}
		return stringify(x), nil
	case coerceBytes:
		switch y := x.(type) {
		case nil:
			return nil, nil
		case bytesVal:
			return base64.StdEncoding.EncodeToString(y), nil
		}
		return base64.StdEncoding.EncodeToString([]byte(stringify(x))), nil
	case coerceBool:
		if str, ok := x.(string); ok {
			if b, err := strconv.ParseBool(str); err == nil {
				return b, nil
			}
		}
	}
	return x, nil
}

type objValue struct {
	keys []string
	vals []value
}

func (o objValue) render(s *scope) (any, error) {
	out := make(map[string]any, len(o.keys))
	for i, k := range o.keys {
		v, err := o.vals[i].render(s)
		if err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, nil
}

type listValue struct{ items []value }

func (l listValue) render(s *scope) (any, error) {
	out := make([]any, len(l.items))
	for i, it := range l.items {
		v, err := it.render(s)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// collapse turns an object or list of constants into one constant.
func collapse(v value) value {
	switch x := v.(type) {
	case objValue:
		out := make(map[string]any, len(x.keys))
		for i, k := range x.keys {
			c, ok := x.vals[i].(constValue)
			if !ok {
				return v
			}
			out[k] = c.v
		}
		return constValue{out}
	case listValue:
		out := make([]any, len(x.items))
		for i, it := range x.items {
			c, ok := it.(constValue)
			if !ok {
				return v
			}
			out[i] = c.v
		}
		return constValue{out}
	}
	return v
}

// msgValue builds one message of a known type from a compiled value.
type msgValue struct {
	md    protoreflect.MessageDescriptor
	v     value
	pos   calls.Pos
	what  string // "reply", "call.with", ... for errors
	types dynamic.TypeResolver
	fixed proto.Message // built at load when v is constant
}

// build returns a new message (never shared between calls).
func (m *msgValue) build(s *scope) (proto.Message, error) {
	if m.fixed != nil {
		return proto.Clone(m.fixed), nil
	}
	v, err := m.v.render(s)
	if err != nil {
		return nil, fmt.Errorf("%s (%s): %w", m.what, m.pos, err)
	}
	msg, err := jsonMessage(v, m.md, m.types)
	if err != nil {
		return nil, fmt.Errorf("%s (%s): %w", m.what, m.pos, err)
	}
	return msg, nil
}

// jsonMessage builds a dynamic message of md from JSON-shaped data.
func jsonMessage(v any, md protoreflect.MessageDescriptor, types dynamic.TypeResolver) (proto.Message, error) {
	if v == nil {
		v = map[string]any{}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	msg := dynamicpb.NewMessage(md)
	opts := protojson.UnmarshalOptions{}
	if types != nil {
		opts.Resolver = types
	}
	if err := opts.Unmarshal(b, msg); err != nil {
		return nil, fmt.Errorf("build %s: %w", md.FullName(), err)
	}
	return msg, nil
}

// valueCompiler compiles YAML values against message descriptors.
type valueCompiler struct {
	d     *diags
	env   *tenv
	types dynamic.TypeResolver
}

// msg compiles n as a message of md; what names it in errors ("reply").
func (c *valueCompiler) msg(n *yaml.Node, md protoreflect.MessageDescriptor, what string) *msgValue {
	before := len(c.d.list)
	v := c.message(n, md, what)
	m := &msgValue{md: md, v: v, pos: c.d.pos(n), what: what, types: c.types}
	if len(c.d.list) > before {
		return m
	}
	if cv, ok := v.(constValue); ok {
		msg, err := jsonMessage(cv.v, md, c.types)
		if err != nil {
			c.d.errorf(n, "%s: %v", what, err)
			return m
		}
		m.fixed = msg
	}
	return m
}

// template compiles a scalar containing `${`, or returns nil. A template
// that is a single expression must give one of the types the field takes
// (any type when takes is empty); what names the field for that error.
func (c *valueCompiler) template(n *yaml.Node, path string, coerce coercion, what string, takes ...vtype) value {
	if n.Kind != yaml.ScalarNode || n.ShortTag() == "!!null" || !hasTemplate(n.Value) {
		return nil
	}
	t, err := parseTemplate(n.Value)
	if err == nil {
		err = c.env.check(t)
	}
	if err == nil && t.whole() && len(takes) > 0 {
		err = checkFits(t.parts[0].ref, what, takes)
	}
	if err != nil {
		c.d.errorf(n, "%s: %v", path, err)
		return constValue{nil}
	}
	return tmplValue{t: t, coerce: coerce}
}

// checkFits reports an expression whose type the field cannot hold.
func checkFits(r *ref, what string, takes []vtype) error {
	if r.out == typeAny {
		return nil
	}
	for _, t := range takes {
		if t == r.out {
			return nil
		}
	}
	names := make([]string, len(takes))
	for i, t := range takes {
		names[i] = t.String()
	}
	return fmt.Errorf("${%s} gives %s; %s takes %s", r.src, r.out, what, strings.Join(names, " or "))
}

// fieldTakes is what a template may give for one scalar value of fd: what names
// the field's type, takes the types it accepts.
func fieldTakes(fd protoreflect.FieldDescriptor) (what string, takes []vtype) {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return "", nil // message checks its own templates
	case protoreflect.StringKind:
		return "a string field", []vtype{typeText, typeBytes, typeNumber, typeBool}
	case protoreflect.BytesKind:
		return "a bytes field", []vtype{typeBytes, typeText, typeNumber}
	case protoreflect.BoolKind:
		return "a bool field", []vtype{typeBool, typeText}
	case protoreflect.EnumKind:
		return "an enum field", []vtype{typeText, typeNumber}
	}
	return "a number field (" + fd.Kind().String() + ")", []vtype{typeNumber, typeText}
}

// message compiles a mapping of field names.
func (c *valueCompiler) message(n *yaml.Node, md protoreflect.MessageDescriptor, path string) value {
	n = deref(n)
	if n == nil || isNull(n) {
		return constValue{map[string]any{}}
	}
	if isWellKnown(md) {
		return c.wellKnown(n, md, path)
	}
	if v := c.template(n, path, coerceNone, "a message ("+string(md.FullName())+")", typeObject); v != nil {
		return v
	}
	if n.Kind != yaml.MappingNode {
		c.d.errorf(n, "%s is a %s: write a mapping of its fields, not %s", path, md.FullName(), describeNode(n))
		return constValue{nil}
	}
	ps, _ := c.d.pairs(n, path)
	out := objValue{}
	seen := map[protoreflect.FieldNumber]string{}
	oneofs := map[protoreflect.FullName]string{}
	for _, p := range ps {
		fd := findField(md, p.key)
		if fd == nil {
			c.d.errorf(p.knode, "%s: unknown field %q in %s%s", path, p.key, md.FullName(), words.DidYouMean(p.key, fieldNames(md)))
			continue
		}
		if prev, dup := seen[fd.Number()]; dup {
			c.d.errorf(p.knode, "%s: field %s is set twice (as %q and %q)", path, fd.Name(), prev, p.key)
			continue
		}
		seen[fd.Number()] = p.key
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
			if other, dup := oneofs[od.FullName()]; dup {
				c.d.errorf(p.knode, "%s: %s and %s belong to oneof %s: set only one", path, other, fd.Name(), od.Name())
				continue
			}
			oneofs[od.FullName()] = string(fd.Name())
		}
		out.keys = append(out.keys, string(fd.Name()))
		out.vals = append(out.vals, c.field(p.val, fd, path+"."+string(fd.Name())))
	}
	return collapse(out)
}

// field compiles the value of one field, list and map fields included.
func (c *valueCompiler) field(n *yaml.Node, fd protoreflect.FieldDescriptor, path string) value {
	n = deref(n)
	if n == nil || isNull(n) {
		return constValue{nil}
	}
	switch {
	case fd.IsList():
		if v := c.template(n, path, coerceNone, "a repeated field", typeList); v != nil {
			return v
		}
		if n.Kind != yaml.SequenceNode {
			c.d.errorf(n, "%s is a repeated %s: write a list, not %s", path, kindName(fd), describeNode(n))
			return constValue{nil}
		}
		out := listValue{}
		for i, it := range n.Content {
			out.items = append(out.items, c.single(it, fd, fmt.Sprintf("%s[%d]", path, i)))
		}
		return collapse(out)
	case fd.IsMap():
		if v := c.template(n, path, coerceNone, "a map field", typeObject); v != nil {
			return v
		}
		ps, ok := c.d.pairs(n, path+" (a map)")
		if !ok {
			return constValue{nil}
		}
		out := objValue{}
		for _, p := range ps {
			if err := checkMapKey(fd.MapKey(), p.key); err != nil {
				c.d.errorf(p.knode, "%s: %v", path, err)
				continue
			}
			out.keys = append(out.keys, p.key)
			out.vals = append(out.vals, c.single(p.val, fd.MapValue(), path+"."+p.key))
		}
		return collapse(out)
	}
	return c.single(n, fd, path)
}

func checkMapKey(fd protoreflect.FieldDescriptor, key string) error {
	var err error
	switch fd.Kind() {
	case protoreflect.BoolKind:
		_, err = strconv.ParseBool(key)
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		_, err = strconv.ParseInt(key, 10, 32)
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		_, err = strconv.ParseInt(key, 10, 64)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		_, err = strconv.ParseUint(key, 10, 32)
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		_, err = strconv.ParseUint(key, 10, 64)
	}
	if err != nil {
		return fmt.Errorf("map key %q is not a %s", key, fd.Kind())
	}
	return nil
}

// kindName names a field's element type for messages.
func kindName(fd protoreflect.FieldDescriptor) string {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return string(fd.Message().FullName())
	case protoreflect.EnumKind:
		return "enum " + string(fd.Enum().FullName())
	}
	return fd.Kind().String()
}

// single compiles one element of fd's type.
func (c *valueCompiler) single(n *yaml.Node, fd protoreflect.FieldDescriptor, path string) value {
	n = deref(n)
	if n == nil || isNull(n) {
		return constValue{nil}
	}
	what, takes := fieldTakes(fd)
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return c.message(n, fd.Message(), path)
	case protoreflect.StringKind:
		if v := c.template(n, path, coerceString, what, takes...); v != nil {
			return v
		}
		if isBytesForm(n) {
			text, err := rawText(n)
			if err != nil {
				c.d.errorf(n, "%s: %v", path, err)
				return constValue{nil}
			}
			return constValue{text}
		}
		if n.Kind != yaml.ScalarNode {
			c.d.errorf(n, "%s is a string, not %s", path, describeNode(n))
			return constValue{nil}
		}
		return constValue{unescape(n.Value)}
	case protoreflect.BytesKind:
		if v := c.template(n, path, coerceBytes, what, takes...); v != nil {
			return v
		}
		if isBytesForm(n) {
			b, err := rawBytes(n)
			if err != nil {
				c.d.errorf(n, "%s: %v", path, err)
				return constValue{nil}
			}
			return constValue{base64.StdEncoding.EncodeToString(b)}
		}
		if n.Kind != yaml.ScalarNode {
			c.d.errorf(n, "%s is bytes: write text, !!binary, {base64: ...} or {hex: ...}, not %s", path, describeNode(n))
			return constValue{nil}
		}
		return constValue{base64.StdEncoding.EncodeToString([]byte(unescape(n.Value)))}
	case protoreflect.BoolKind:
		if v := c.template(n, path, coerceBool, what, takes...); v != nil {
			return v
		}
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
			c.d.errorf(n, "%s is a bool: write true or false, not %s", path, describeNode(n))
			return constValue{nil}
		}
		v, _ := scalarJSON(n)
		return constValue{v}
	case protoreflect.EnumKind:
		if v := c.template(n, path, coerceNone, what, takes...); v != nil {
			return v
		}
		v, err := enumLiteral(n, fd.Enum())
		if err != nil {
			c.d.errorf(n, "%s: %v", path, err)
			return constValue{nil}
		}
		return constValue{v}
	default:
		if v := c.template(n, path, coerceNone, what, takes...); v != nil {
			return v
		}
		v, err := numberLiteral(n, fd.Kind())
		if err != nil {
			c.d.errorf(n, "%s: %v", path, err)
			return constValue{nil}
		}
		return constValue{v}
	}
}

// wellKnown compiles a google.protobuf type written in its JSON form
// (Timestamp as RFC 3339, Struct as any mapping, Any with "@type").
func (c *valueCompiler) wellKnown(n *yaml.Node, md protoreflect.MessageDescriptor, path string) value {
	if md.FullName() == "google.protobuf.Any" && n.Kind == yaml.MappingNode {
		return c.anyValue(n, path)
	}
	v := c.free(n, path)
	if cv, ok := v.(constValue); ok {
		if _, err := jsonMessage(cv.v, md, c.types); err != nil && !(md.FullName() == "google.protobuf.Value" && cv.v == nil) {
			c.d.errorf(n, "%s is a %s: %v", path, md.FullName(), err)
		}
	}
	return v
}

// anyValue compiles an Any: "@type" names the type, the other keys are its
// fields (or "value" for well-known types, as in protojson).
func (c *valueCompiler) anyValue(n *yaml.Node, path string) value {
	ps, _ := c.d.pairs(n, path)
	var typeNode *yaml.Node
	for _, p := range ps {
		if p.key == "@type" {
			typeNode = deref(p.val)
		}
	}
	if typeNode == nil {
		c.d.errorf(n, "%s is a google.protobuf.Any: it needs \"@type\" naming the message type", path)
		return constValue{nil}
	}
	url := anyURL(typeNode.Value)
	md, err := c.resolveAny(url)
	if err != nil {
		c.d.errorf(typeNode, "%s: %v", path, err)
		return constValue{nil}
	}
	out := objValue{keys: []string{"@type"}, vals: []value{constValue{url}}}
	if isWellKnown(md) {
		for _, p := range ps {
			switch p.key {
			case "@type":
			case "value":
				out.keys = append(out.keys, "value")
				out.vals = append(out.vals, c.wellKnown(deref(p.val), md, path+".value"))
			default:
				c.d.errorf(p.knode, "%s: an Any holding %s takes only \"@type\" and \"value\", not %q", path, md.FullName(), p.key)
			}
		}
		return collapse(out)
	}
	for _, p := range ps {
		if p.key == "@type" {
			continue
		}
		fd := findField(md, p.key)
		if fd == nil {
			c.d.errorf(p.knode, "%s: unknown field %q in %s%s", path, p.key, md.FullName(), words.DidYouMean(p.key, fieldNames(md)))
			continue
		}
		out.keys = append(out.keys, string(fd.Name()))
		out.vals = append(out.vals, c.field(p.val, fd, path+"."+string(fd.Name())))
	}
	return collapse(out)
}

// anyURL adds the usual type URL prefix to a bare message name.
func anyURL(t string) string {
	t = strings.TrimSpace(t)
	if !strings.Contains(t, "/") {
		return "type.googleapis.com/" + t
	}
	return t
}

func (c *valueCompiler) resolveAny(url string) (protoreflect.MessageDescriptor, error) {
	if c.types != nil {
		if mt, err := c.types.FindMessageByURL(url); err == nil {
			return mt.Descriptor(), nil
		}
	}
	mt, err := globalTypes.FindMessageByURL(url)
	if err != nil {
		return nil, fmt.Errorf("unknown message type %q for @type (not in the schema, nor a google.rpc or google.protobuf type)", url)
	}
	return mt.Descriptor(), nil
}

// free compiles YAML with no schema below it, templates included.
func (c *valueCompiler) free(n *yaml.Node, path string) value {
	n = deref(n)
	if n == nil {
		return constValue{nil}
	}
	switch n.Kind {
	case yaml.ScalarNode:
		if v := c.template(n, path, coerceNone, ""); v != nil {
			return v
		}
		v, err := scalarJSON(n)
		if err != nil {
			c.d.errorf(n, "%s: %v", path, err)
		}
		if text, ok := v.(string); ok && n.ShortTag() == "!!str" {
			v = unescape(text)
		}
		return constValue{v}
	case yaml.SequenceNode:
		out := listValue{}
		for i, it := range n.Content {
			out.items = append(out.items, c.free(it, fmt.Sprintf("%s[%d]", path, i)))
		}
		return collapse(out)
	case yaml.MappingNode:
		ps, _ := c.d.pairs(n, path)
		out := objValue{}
		for _, p := range ps {
			out.keys = append(out.keys, p.key)
			out.vals = append(out.vals, c.free(p.val, path+"."+p.key))
		}
		return collapse(out)
	}
	return constValue{nil}
}

// enumLiteral accepts a value name or number.
func enumLiteral(n *yaml.Node, ed protoreflect.EnumDescriptor) (any, error) {
	if n.Kind != yaml.ScalarNode {
		return nil, fmt.Errorf("enum %s wants a value name or number, not %s", ed.FullName(), describeNode(n))
	}
	if n.ShortTag() == "!!int" {
		v, err := strconv.ParseInt(n.Value, 0, 32)
		if err != nil {
			return nil, fmt.Errorf("enum %s: %s is not a 32-bit number", ed.FullName(), n.Value)
		}
		if ev := ed.Values().ByNumber(protoreflect.EnumNumber(v)); ev != nil {
			return string(ev.Name()), nil
		}
		return json.Number(strconv.FormatInt(v, 10)), nil
	}
	if ed.Values().ByName(protoreflect.Name(n.Value)) == nil {
		names := make([]string, ed.Values().Len())
		for i := range names {
			names[i] = string(ed.Values().Get(i).Name())
		}
		return nil, fmt.Errorf("enum %s has no value %q%s", ed.FullName(), n.Value, words.DidYouMean(n.Value, names))
	}
	return n.Value, nil
}

// numberLiteral checks a number (or quoted number) against a numeric kind.
func numberLiteral(n *yaml.Node, kind protoreflect.Kind) (any, error) {
	if n.Kind != yaml.ScalarNode {
		return nil, fmt.Errorf("a %s wants a number, not %s", kind, describeNode(n))
	}
	text := n.Value
	switch n.ShortTag() {
	case "!!int", "!!float":
		v, err := scalarJSON(n)
		if err != nil {
			return nil, err
		}
		if s, ok := v.(string); ok { // Infinity, NaN
			text = s
		} else {
			text = string(v.(json.Number))
		}
	case "!!str":
	default:
		return nil, fmt.Errorf("a %s wants a number, not %s", kind, describeNode(n))
	}
	switch kind {
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		switch text {
		case "Infinity", "-Infinity", "NaN":
			return text, nil
		}
		f, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not a %s", n.Value, kind)
		}
		if kind == protoreflect.FloatKind && math.Abs(f) > math.MaxFloat32 {
			return nil, fmt.Errorf("%s is out of range for a float", n.Value)
		}
		return json.Number(text), nil
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		if _, err := strconv.ParseInt(text, 10, 32); err != nil {
			return nil, fmt.Errorf("%s is not an int32", n.Value)
		}
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		if _, err := strconv.ParseInt(text, 10, 64); err != nil {
			return nil, fmt.Errorf("%s is not an int64", n.Value)
		}
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		if _, err := strconv.ParseUint(text, 10, 32); err != nil {
			return nil, fmt.Errorf("%s is not a uint32", n.Value)
		}
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		if _, err := strconv.ParseUint(text, 10, 64); err != nil {
			return nil, fmt.Errorf("%s is not a uint64", n.Value)
		}
	}
	return json.Number(text), nil
}

// decodeBase64 accepts the encodings protojson accepts.
func decodeBase64(s string) ([]byte, error) {
	enc := base64.StdEncoding
	if strings.ContainsAny(s, "-_") {
		enc = base64.URLEncoding
	}
	if len(s)%4 != 0 {
		enc = enc.WithPadding(base64.NoPadding)
	}
	return enc.DecodeString(s)
}
