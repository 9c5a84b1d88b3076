package script

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/wrapperspb"
	"gopkg.in/yaml.v3"

	"github.com/bcctl/bcctl/internal/words"
)

// matcher tests one JSON-shaped value. present is false when the value is
// absent (a field protojson left out, a missing metadata key); v is then the
// field's default. When the value does not match, why says how, naming the
// path (`request.branch_name "main" does not match re "^feature/"`).
type matcher interface {
	match(v any, present bool) (ok bool, why string)
}

// Operators usable wherever a value is matched.
var matchOps = []string{"eq", "re", "glob", "one_of", "exists", "gt", "ge", "lt", "le", "not", "contains", "len"}

func isOp(k string) bool {
	for _, o := range matchOps {
		if o == k {
			return true
		}
	}
	return false
}

// cmpKind says how literals compare with values of a field.
type cmpKind int

const (
	cmpJSON   cmpKind = iota // deep equality, numbers by value
	cmpNumber                // numbers (and int64 strings) by value
	cmpBytes                 // base64 value against UTF-8 text or base64 literal
	cmpString                // strings, enum names, booleans: exact
)

// show formats a value for a mismatch message.
func show(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// textOf is the text that re, glob and contains see: bytes as UTF-8 text
// when they are valid UTF-8.
func textOf(v any, kind cmpKind) string {
	s := stringify(v)
	if kind == cmpBytes {
		if b, err := decodeBase64(s); err == nil && utf8.Valid(b) {
			return string(b)
		}
	}
	return s
}

// showKind formats a value as the user thinks of it (bytes as text).
func showKind(v any, kind cmpKind) string {
	switch kind {
	case cmpBytes:
		return strconv.Quote(textOf(v, kind))
	case cmpNumber:
		if s, ok := v.(string); ok {
			if _, isNum := ratOf(s); isNum {
				return s // an int64 that protojson quoted
			}
		}
	}
	return show(v)
}

func ratOf(v any) (*big.Rat, bool) {
	switch x := v.(type) {
	case json.Number:
		return new(big.Rat).SetString(string(x))
	case string:
		return new(big.Rat).SetString(x)
	}
	return nil, false
}

// equalJSON compares JSON-shaped values, numbers by value.
func equalJSON(a, b any) bool {
	ra, oka := ratOf(a)
	rb, okb := ratOf(b)
	if _, sa := a.(string); !sa && oka && okb {
		return ra.Cmp(rb) == 0
	}
	if _, sb := b.(string); !sb && oka && okb {
		return ra.Cmp(rb) == 0
	}
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !equalJSON(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equalJSON(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}

type eqMatcher struct {
	path string
	want any
	kind cmpKind
}

func (m eqMatcher) equal(v any) bool {
	switch m.kind {
	case cmpNumber:
		a, oka := ratOf(v)
		b, okb := ratOf(m.want)
		if oka && okb {
			return a.Cmp(b) == 0
		}
		return stringify(v) == stringify(m.want)
	case cmpBytes:
		return textOf(v, cmpBytes) == m.want || stringify(v) == m.want
	case cmpString:
		return stringify(v) == stringify(m.want)
	}
	return equalJSON(v, m.want)
}

func (m eqMatcher) match(v any, _ bool) (bool, string) {
	if m.equal(v) {
		return true, ""
	}
	return false, fmt.Sprintf("%s is %s, want %s", m.path, showKind(v, m.kind), show(m.want))
}

type reMatcher struct {
	path string
	re   *regexp.Regexp
	op   string // "re" or "glob"
	src  string
	kind cmpKind
}

func (m reMatcher) match(v any, _ bool) (bool, string) {
	if m.re.MatchString(textOf(v, m.kind)) {
		return true, ""
	}
	return false, fmt.Sprintf("%s %s does not match %s %q", m.path, showKind(v, m.kind), m.op, m.src)
}

type existsMatcher struct {
	path string
	want bool
}

func (m existsMatcher) match(v any, present bool) (bool, string) {
	if present == m.want {
		return true, ""
	}
	if m.want {
		return false, m.path + " is missing"
	}
	return false, fmt.Sprintf("%s is present (%s), want it absent", m.path, show(v))
}

// closeness counts how many of m's leaf conditions v meets, to find the
// rule that came closest to matching a call.
func closeness(m matcher, v any, present bool) (hit, total int) {
	switch x := m.(type) {
	case objMatcher:
		obj, _ := v.(map[string]any)
		for _, f := range x.fields {
			got, has := obj[f.key]
			if !has && f.fd != nil {
				got = defaultJSON(f.fd)
			}
			h, t := closeness(f.m, got, has)
			hit, total = hit+h, total+t
		}
		if x.exact {
			total++
			if ok, _ := x.match(v, present); ok {
				hit++
			}
		}
		return hit, total
	case allMatcher:
		for _, sub := range x {
			h, t := closeness(sub, v, present)
			hit, total = hit+h, total+t
		}
		return hit, total
	case listMatcher:
		l, _ := v.([]any)
		if len(l) != len(x.items) {
			return 0, max(1, len(x.items))
		}
		for i, it := range x.items {
			h, t := closeness(it, l[i], true)
			hit, total = hit+h, total+t
		}
		return hit, total
	}
	if ok, _ := m.match(v, present); ok {
		return 1, 1
	}
	return 0, 1
}

type cmpMatcher struct {
	path string
	op   string
	want *big.Rat
	src  string
}

func (m cmpMatcher) match(v any, _ bool) (bool, string) {
	got, ok := ratOf(v)
	if !ok {
		return false, fmt.Sprintf("%s is %s, not a number (%s %s)", m.path, show(v), m.op, m.src)
	}
	c := got.Cmp(m.want)
	var good bool
	switch m.op {
	case "gt":
		good = c > 0
	case "ge":
		good = c >= 0
	case "lt":
		good = c < 0
	case "le":
		good = c <= 0
	}
	if good {
		return true, ""
	}
	return false, fmt.Sprintf("%s is %s, want %s %s", m.path, showKind(v, cmpNumber), m.op, m.src)
}

type oneOfMatcher struct {
	path  string
	items []matcher
	src   string
	kind  cmpKind
}

func (m oneOfMatcher) match(v any, present bool) (bool, string) {
	for _, it := range m.items {
		if ok, _ := it.match(v, present); ok {
			return true, ""
		}
	}
	return false, fmt.Sprintf("%s is %s, not one of %s", m.path, showKind(v, m.kind), m.src)
}

type notMatcher struct {
	path  string
	inner matcher
}

func (m notMatcher) match(v any, present bool) (bool, string) {
	if ok, _ := m.inner.match(v, present); !ok {
		return true, ""
	}
	return false, fmt.Sprintf("%s is %s, which the `not` matcher excludes", m.path, show(v))
}

// containsMatcher: some element of a list matches, or a string contains a
// substring.
type containsMatcher struct {
	path string
	elem matcher // for lists
	sub  string  // for strings
	list bool
	kind cmpKind
}

func (m containsMatcher) match(v any, _ bool) (bool, string) {
	if m.list {
		l, _ := v.([]any)
		for _, e := range l {
			if ok, _ := m.elem.match(e, true); ok {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%s %s has no element that matches", m.path, show(v))
	}
	if strings.Contains(textOf(v, m.kind), m.sub) {
		return true, ""
	}
	return false, fmt.Sprintf("%s %s does not contain %q", m.path, showKind(v, m.kind), m.sub)
}

type lenMatcher struct {
	path  string
	inner matcher
}

func (m lenMatcher) match(v any, _ bool) (bool, string) {
	var n int
	switch x := v.(type) {
	case []any:
		n = len(x)
	case map[string]any:
		n = len(x)
	case string:
		n = utf8.RuneCountInString(x)
	case nil:
	default:
		n = len(stringify(x))
	}
	if ok, why := m.inner.match(json.Number(strconv.Itoa(n)), true); !ok {
		return false, why
	}
	return true, ""
}

type allMatcher []matcher

func (a allMatcher) match(v any, present bool) (bool, string) {
	for _, m := range a {
		if ok, why := m.match(v, present); !ok {
			return false, why
		}
	}
	return true, ""
}

// objField matches one key of an object.
type objField struct {
	key string
	fd  protoreflect.FieldDescriptor // nil for free-form objects and maps
	m   matcher
}

// objMatcher matches an object as a subset (or exactly).
type objMatcher struct {
	path   string
	fields []objField
	exact  bool
}

func (m objMatcher) match(v any, present bool) (bool, string) {
	obj, ok := v.(map[string]any)
	if v == nil {
		obj, ok = map[string]any{}, true
	}
	if !ok {
		return false, fmt.Sprintf("%s is %s, not an object", m.path, show(v))
	}
	for _, f := range m.fields {
		got, has := obj[f.key]
		if !has && f.fd != nil {
			got = defaultJSON(f.fd)
		}
		if ok, why := f.m.match(got, has); !ok {
			return false, why
		}
	}
	if m.exact {
		var extra []string
		for k := range obj {
			named := false
			for _, f := range m.fields {
				if f.key == k {
					named = true
					break
				}
			}
			if !named {
				extra = append(extra, k)
			}
		}
		if len(extra) > 0 {
			sort.Strings(extra)
			return false, fmt.Sprintf("%s.%s is set (%s) but not named in an exact match", m.path, extra[0], show(obj[extra[0]]))
		}
	}
	return true, ""
}

// listMatcher matches a list element by element.
type listMatcher struct {
	path  string
	items []matcher
}

func (m listMatcher) match(v any, _ bool) (bool, string) {
	l, ok := v.([]any)
	if v == nil {
		l, ok = nil, true
	}
	if !ok {
		return false, fmt.Sprintf("%s is %s, not a list", m.path, show(v))
	}
	if len(l) != len(m.items) {
		return false, fmt.Sprintf("%s has %d elements, want %d", m.path, len(l), len(m.items))
	}
	for i, it := range m.items {
		if ok, why := it.match(l[i], true); !ok {
			return false, why
		}
	}
	return true, ""
}

// mtarget is what a matcher is compiled for.
type mtarget struct {
	fd    protoreflect.FieldDescriptor   // the field (nil at the root and in free-form data)
	md    protoreflect.MessageDescriptor // message matched as an object
	whole bool                           // the whole repeated or map field, not one element
	str   bool                           // metadata values: plain strings
}

func (t mtarget) kind() cmpKind {
	if t.str {
		return cmpString
	}
	if t.fd == nil || t.whole {
		return cmpJSON
	}
	switch t.fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return cmpJSON
	case protoreflect.BytesKind:
		return cmpBytes
	case protoreflect.StringKind, protoreflect.EnumKind, protoreflect.BoolKind:
		return cmpString
	}
	return cmpNumber
}

// elem is the target of one element of a repeated or map field.
func (t mtarget) elem() mtarget {
	fd := t.fd
	if fd.IsMap() {
		fd = fd.MapValue()
	}
	e := mtarget{fd: fd}
	if fd.Message() != nil {
		e.md = fd.Message()
	}
	return e
}

func fieldTarget(fd protoreflect.FieldDescriptor) mtarget {
	t := mtarget{fd: fd, whole: fd.IsList() || fd.IsMap()}
	if !t.whole && fd.Message() != nil {
		t.md = fd.Message()
	}
	return t
}

// matchCompiler compiles YAML matchers.
type matchCompiler struct {
	d      *diags
	prefix string // where the matcher is, for load errors: "rules[0].match."
}

func (c *matchCompiler) errorf(n *yaml.Node, format string, args ...any) {
	c.d.errorf(n, c.prefix+format, args...)
}

// isOpMap reports a mapping whose keys are all operators (and, for a
// message, not field names).
func (c *matchCompiler) isOpMap(n *yaml.Node, t mtarget) bool {
	if n.Kind != yaml.MappingNode || len(n.Content) == 0 {
		return false
	}
	for i := 0; i < len(n.Content); i += 2 {
		k := deref(n.Content[i]).Value
		if !isOp(k) {
			return false
		}
		if t.md != nil && !isWellKnown(t.md) && findField(t.md, k) != nil {
			return false
		}
	}
	return true
}

// compile compiles the matcher for a value of target t at path.
func (c *matchCompiler) compile(n *yaml.Node, t mtarget, path string, exact bool) matcher {
	n = deref(n)
	if n == nil {
		return eqMatcher{path: path, want: nil, kind: cmpJSON}
	}
	// lit is n as literal text; free-form data reads its own scalars.
	lit, ok := c.literalNode(n, path)
	if !ok {
		return allMatcher{}
	}
	if m := c.bytesLiteral(lit, t, path); m != nil {
		return m
	}
	if c.isOpMap(n, t) {
		return c.ops(n, t, path, exact)
	}
	if n.Kind == yaml.MappingNode && t.md == nil && !t.whole && t.fd != nil && t.fd.Message() == nil {
		ps, _ := c.d.pairs(n, path)
		for _, p := range ps {
			if !isOp(p.key) {
				c.errorf(p.knode, "%s: unknown matcher %q%s", path, p.key, words.DidYouMean(p.key, matchOps))
			}
		}
		return allMatcher{}
	}
	switch {
	case t.whole && t.fd.IsList():
		if n.Kind != yaml.SequenceNode {
			c.errorf(n, "%s is a repeated %s: write a list (matched element by element) or a matcher such as contains or len, not %s", path, kindName(t.fd), describeNode(n))
			return allMatcher{}
		}
		lm := listMatcher{path: path}
		for i, it := range n.Content {
			lm.items = append(lm.items, c.compile(it, t.elem(), fmt.Sprintf("%s[%d]", path, i), exact))
		}
		return lm
	case t.whole: // map field
		ps, ok := c.d.pairs(n, path+" (a map)")
		if !ok {
			return allMatcher{}
		}
		om := objMatcher{path: path, exact: exact}
		for _, p := range ps {
			if err := checkMapKey(t.fd.MapKey(), p.key); err != nil {
				c.errorf(p.knode, "%s: %v", path, err)
				continue
			}
			om.fields = append(om.fields, objField{key: p.key, m: c.compile(p.val, t.elem(), path+"."+p.key, exact)})
		}
		return om
	case t.md != nil && !isWellKnown(t.md):
		if isNull(n) {
			return existsMatcher{path: path, want: false}
		}
		if n.Kind != yaml.MappingNode {
			c.errorf(n, "%s is a %s: write a mapping of its fields (or a matcher), not %s", path, t.md.FullName(), describeNode(n))
			return allMatcher{}
		}
		return c.object(n, t.md, path, exact)
	case t.fd == nil || t.md != nil: // free-form JSON (Struct, Any, ...)
		return c.free(n, path)
	}
	want, err := c.literal(lit, t)
	if err != nil {
		c.errorf(n, "%s: %v", path, err)
		return allMatcher{}
	}
	return eqMatcher{path: path, want: want, kind: t.kind()}
}

// object compiles a mapping of field names as a subset match.
func (c *matchCompiler) object(n *yaml.Node, md protoreflect.MessageDescriptor, path string, exact bool) matcher {
	ps, _ := c.d.pairs(n, path)
	om := objMatcher{path: path, exact: exact}
	seen := map[protoreflect.FieldNumber]bool{}
	for _, p := range ps {
		fd := findField(md, p.key)
		if fd == nil {
			c.errorf(p.knode, "%s: unknown field %q in %s%s", path, p.key, md.FullName(), words.DidYouMean(p.key, fieldNames(md)))
			continue
		}
		if seen[fd.Number()] {
			c.errorf(p.knode, "%s: field %s is matched twice", path, fd.Name())
			continue
		}
		seen[fd.Number()] = true
		sub := path + "." + string(fd.Name())
		om.fields = append(om.fields, objField{key: string(fd.Name()), fd: fd, m: c.compile(p.val, fieldTarget(fd), sub, exact)})
	}
	return om
}

// free compiles a matcher over data with no schema: mappings match as
// subsets, lists element by element, scalars by equality.
func (c *matchCompiler) free(n *yaml.Node, path string) matcher {
	switch n.Kind {
	case yaml.MappingNode:
		if c.isOpMap(n, mtarget{}) {
			return c.ops(n, mtarget{}, path, false)
		}
		ps, _ := c.d.pairs(n, path)
		om := objMatcher{path: path}
		for _, p := range ps {
			om.fields = append(om.fields, objField{key: p.key, m: c.free(deref(p.val), path+"."+p.key)})
		}
		return om
	case yaml.SequenceNode:
		lm := listMatcher{path: path}
		for i, it := range n.Content {
			lm.items = append(lm.items, c.free(deref(it), fmt.Sprintf("%s[%d]", path, i)))
		}
		return lm
	}
	n, ok := c.literalNode(n, path)
	if !ok {
		return allMatcher{}
	}
	v, _ := c.d.yamlJSON(n)
	return eqMatcher{path: path, want: v, kind: cmpJSON}
}

// literalNode returns a scalar as matchers read it: literal text, in which
// every `$${` is a literal `${` as everywhere in a script. A template is a
// load error. Other nodes are returned as they are.
func (c *matchCompiler) literalNode(n *yaml.Node, path string) (*yaml.Node, bool) {
	if n.Kind != yaml.ScalarNode {
		return n, true
	}
	if hasTemplate(n.Value) {
		c.errorf(n, "%s: templates are not allowed in matchers (write $${ for a literal ${)", path)
		return nil, false
	}
	if n.ShortTag() != "!!str" || !strings.Contains(n.Value, "$${") {
		return n, true
	}
	lit := *n
	lit.Value = unescape(n.Value)
	return &lit, true
}

// text reads the text operand of a matcher (re, glob, contains) as
// literalNode reads a scalar.
func (c *matchCompiler) text(n *yaml.Node, path, op string) (string, bool) {
	if _, ok := c.d.scalarString(n, c.prefix+path+": "+op); !ok {
		return "", false
	}
	lit, ok := c.literalNode(deref(n), path+": "+op)
	if !ok {
		return "", false
	}
	return lit.Value, true
}

// literal converts a scalar to the form protojson gives a field's value.
func (c *matchCompiler) literal(n *yaml.Node, t mtarget) (any, error) {
	if n.Kind != yaml.ScalarNode {
		return nil, fmt.Errorf("want a single value, not %s", describeNode(n))
	}
	if t.str {
		return n.Value, nil
	}
	switch t.fd.Kind() {
	case protoreflect.StringKind, protoreflect.BytesKind:
		return n.Value, nil
	case protoreflect.BoolKind:
		b, err := strconv.ParseBool(n.Value)
		if err != nil {
			return nil, fmt.Errorf("%s is a bool: write true or false, not %s", t.fd.Name(), describeNode(n))
		}
		return b, nil
	case protoreflect.EnumKind:
		return enumLiteral(n, t.fd.Enum())
	}
	return numberLiteral(n, t.fd.Kind())
}

// ops compiles a mapping of operators; several operators must all hold.
func (c *matchCompiler) ops(n *yaml.Node, t mtarget, path string, exact bool) matcher {
	ps, _ := c.d.pairs(n, path)
	var all allMatcher
	kind := t.kind()
	for _, p := range ps {
		v := deref(p.val)
		switch p.key {
		case "eq":
			all = append(all, c.compile(v, t, path, exact))
		case "re", "glob":
			src, ok := c.text(v, path, p.key)
			if !ok {
				continue
			}
			var re *regexp.Regexp
			var err error
			if p.key == "re" {
				re, err = regexp.Compile(src)
			} else {
				re, err = compileGlob(src, false)
			}
			if err != nil {
				c.errorf(v, "%s: bad %s %q: %v", path, p.key, src, err)
				continue
			}
			all = append(all, reMatcher{path: path, re: re, op: p.key, src: src, kind: kind})
		case "one_of":
			if v == nil || v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
				c.errorf(orNode(v), "%s: one_of wants a non-empty list, not %s", path, describeNode(v))
				continue
			}
			om := oneOfMatcher{path: path, kind: kind}
			var shown []any
			for _, it := range v.Content {
				om.items = append(om.items, c.compile(it, t, path, exact))
				x, _ := c.d.yamlJSON(it)
				shown = append(shown, x)
			}
			om.src = show(shown)
			all = append(all, om)
		case "exists":
			b, ok := c.d.scalarBool(v, c.prefix+path+": exists")
			if ok {
				all = append(all, existsMatcher{path: path, want: b})
			}
		case "gt", "ge", "lt", "le":
			if v == nil || v.Kind != yaml.ScalarNode {
				c.errorf(orNode(v), "%s: %s wants a number, not %s", path, p.key, describeNode(v))
				continue
			}
			r, ok := new(big.Rat).SetString(v.Value)
			if !ok {
				c.errorf(v, "%s: %s wants a number, not %s", path, p.key, describeNode(v))
				continue
			}
			all = append(all, cmpMatcher{path: path, op: p.key, want: r, src: v.Value})
		case "not":
			all = append(all, notMatcher{path: path, inner: c.compile(v, t, path, exact)})
		case "contains":
			if t.whole && t.fd != nil && t.fd.IsList() {
				all = append(all, containsMatcher{path: path, list: true, elem: c.compile(v, t.elem(), path+"[]", exact)})
				continue
			}
			if t.fd == nil && !t.str && v != nil && v.Kind != yaml.ScalarNode {
				all = append(all, containsMatcher{path: path, list: true, elem: c.free(v, path+"[]")})
				continue
			}
			src, ok := c.text(v, path, "contains")
			if ok {
				all = append(all, containsMatcher{path: path, sub: src, kind: kind})
			}
		case "len":
			num := mtarget{fd: lenField}
			all = append(all, lenMatcher{path: path, inner: c.compile(v, num, "len("+path+")", false)})
		}
	}
	return all
}

// lenField is an int64 field descriptor used to compile `len` matchers.
var lenField = (&wrapperspb.Int64Value{}).ProtoReflect().Descriptor().Fields().ByName("value")

// mdMatcher matches one metadata key: it holds when any value matches
// (exists: false holds when the key is absent).
type mdMatcher struct {
	key string
	m   matcher
}

func (m mdMatcher) match(md metadata.MD) (bool, string) {
	vals := md.Get(m.key)
	if len(vals) == 0 {
		return m.m.match("", false)
	}
	var why string
	for _, v := range vals {
		if isBinaryKey(m.key) { // raw bytes: matched as protojson gives a bytes field
			v = base64.StdEncoding.EncodeToString([]byte(v))
		}
		ok, w := m.m.match(v, true)
		if ok {
			return true, ""
		}
		why = w
	}
	return false, why
}
