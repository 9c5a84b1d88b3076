package script

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/bcctl/bcctl/internal/words"
)

// vtype is what a template expression evaluates to, as far as the loader
// can tell. Templates are type-checked with it: a function refuses inputs
// it cannot take, and a field refuses values it cannot hold.
type vtype int

const (
	typeAny    vtype = iota // JSON data known only at run time (fromjson, Struct, ...)
	typeText                // a string (enum names and Timestamps too)
	typeBytes               // raw bytes (bytesVal)
	typeNumber              // a number, or an int64 that protojson writes as a string
	typeBool                // true or false
	typeObject              // a message or map: fields can be read with .name
	typeList                // a repeated field or JSON array: elements with .N
)

// String names the type as the loader's messages do.
func (t vtype) String() string {
	return [...]string{"any value", "text", "bytes", "a number", "a boolean", "an object", "a list"}[t]
}

// hasFields reports whether a path may go on below a value of type t.
func (t vtype) hasFields() bool { return t == typeAny || t == typeObject || t == typeList }

// kindType is the type of one value of a field of kind fd (one element
// of a repeated field, one value of a map).
func kindType(fd protoreflect.FieldDescriptor) vtype {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		if isWellKnown(fd.Message()) {
			return typeAny
		}
		return typeObject
	case protoreflect.StringKind, protoreflect.EnumKind:
		return typeText
	case protoreflect.BytesKind:
		return typeBytes
	case protoreflect.BoolKind:
		return typeBool
	}
	return typeNumber
}

// stage is one `| fn` of a template expression, with the path that reads
// into its result (`| fromjson.id`).
type stage struct {
	fn    *tfunc
	steps []pathStep
}

// parseExpr parses the inside of `${...}`: a path, then stages separated
// by `|`. Names are checked later, against the place the template is in.
func parseExpr(expr string) (*ref, error) {
	parts := strings.Split(expr, "|")
	head := strings.TrimSpace(parts[0])
	segs, err := splitPath(head)
	if err != nil {
		return nil, err
	}
	if !rootName.MatchString(segs[0]) {
		return nil, fmt.Errorf("%q is not a name", segs[0])
	}
	r := &ref{src: expr, root: segs[0], steps: pathSteps(segs[1:])}
	for _, p := range parts[1:] {
		p = strings.TrimSpace(p)
		if p == "" {
			return nil, fmt.Errorf("empty function after |: write a function such as b64dec (functions: %s)", funcNames())
		}
		segs, err := splitPath(p)
		if err != nil {
			return nil, err
		}
		fn := lookupFunc(segs[0])
		if fn == nil {
			return nil, fmt.Errorf("unknown function %q%s", segs[0], words.DidYouMean(segs[0], funcNameList()))
		}
		r.stages = append(r.stages, stage{fn: fn, steps: pathSteps(segs[1:])})
	}
	return r, nil
}

// splitPath splits `a.b.c` and refuses empty or odd segments.
func splitPath(s string) ([]string, error) {
	segs := strings.Split(s, ".")
	for _, seg := range segs {
		if seg == "" || strings.ContainsAny(seg, " \t\n{$") {
			return nil, fmt.Errorf("bad path %q: write a path like req.field.sub", s)
		}
	}
	return segs, nil
}

func pathSteps(segs []string) []pathStep {
	out := make([]pathStep, len(segs))
	for i, s := range segs {
		out[i] = pathStep{key: s, index: -1}
	}
	return out
}

// checkStages type-checks r's stages against the type of its path.
func (r *ref) checkStages() error {
	t := r.typ
	at := r.root
	for _, st := range r.stages {
		if !st.fn.accepts(t) {
			return fmt.Errorf("%s takes %s, not %s (the value of %s)", st.fn.name, st.fn.inDoc(), t, at)
		}
		t = st.fn.out
		at = st.fn.name
		if len(st.steps) > 0 {
			if !t.hasFields() {
				return fmt.Errorf("%s gives %s, which has no fields to read (.%s)", st.fn.name, t, st.steps[0].key)
			}
			t = typeAny
			at += "." + st.steps[len(st.steps)-1].key
		}
	}
	r.out = t
	return nil
}

// applyStages runs r's stages on v, the value of its path.
func (r *ref) applyStages(v any) (any, error) {
	for _, st := range r.stages {
		if v == nil { // absent stays absent: a missing metadata key or JSON field
			return nil, nil
		}
		out, err := st.fn.run(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", st.fn.name, err)
		}
		v = walk(out, st.steps)
	}
	return v, nil
}
