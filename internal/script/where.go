package script

import (
	"encoding/base64"
	"fmt"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/wrapperspb"
	"gopkg.in/yaml.v3"
)

// whereCond is one entry of match.where: a template expression and the
// matcher its value must meet. It lets a rule match what only a function
// can reach, such as a field of the JSON in base64 metadata:
//
//	where:
//	  "${meta.gitaly-reference-transaction | b64dec | fromjson.primary}": true
type whereCond struct {
	ref *ref
	m   matcher
}

// match evaluates the expression against the call and matches its value.
func (w whereCond) match(s *scope) (bool, string) {
	v, err := s.evalRef(w.ref)
	if err != nil {
		return false, "where " + err.Error()
	}
	if b, ok := v.(bytesVal); ok { // as protojson writes bytes, which bytes matchers read
		v = base64.StdEncoding.EncodeToString(b)
	}
	return w.m.match(v, v != nil)
}

// Fields whose kinds stand for an expression's type when its matcher is
// compiled (a literal `true` is then a boolean, `{hex: ...}` bytes).
var (
	whereText   = (&wrapperspb.StringValue{}).ProtoReflect().Descriptor().Fields().ByName("value")
	whereBytes  = (&wrapperspb.BytesValue{}).ProtoReflect().Descriptor().Fields().ByName("value")
	whereNumber = (&wrapperspb.DoubleValue{}).ProtoReflect().Descriptor().Fields().ByName("value")
	whereBool   = (&wrapperspb.BoolValue{}).ProtoReflect().Descriptor().Fields().ByName("value")
)

// whereTarget is what a matcher of an expression of type t compiles for.
func whereTarget(t vtype) mtarget {
	var fd protoreflect.FieldDescriptor
	switch t {
	case typeText:
		fd = whereText
	case typeBytes:
		fd = whereBytes
	case typeNumber:
		fd = whereNumber
	case typeBool:
		fd = whereBool
	default:
		return mtarget{} // objects, lists and JSON: matched as free-form data
	}
	return mtarget{fd: fd}
}

// where compiles match.where: a mapping of `${...}` expressions to
// matchers. env says what the expressions may read (no `n`: matching comes
// before the rule answers).
func (l *loader) where(n *yaml.Node, env *tenv, at string) (conds []whereCond, readsReq bool) {
	ps, ok := l.d.pairs(n, at)
	if !ok {
		return nil, false
	}
	mc := &matchCompiler{d: l.d, prefix: strings.TrimSuffix(at, "where")}
	for _, p := range ps {
		t, err := parseTemplate(p.key)
		if err == nil && !t.whole() {
			err = fmt.Errorf("a where key is one ${...} expression, as in \"${meta.x | b64dec | fromjson.id}\"")
		}
		if err == nil {
			err = env.check(t)
		}
		if err != nil {
			l.d.errorf(p.knode, "%s: %v", at, err)
			continue
		}
		r := t.parts[0].ref
		if r.root == "req" {
			readsReq = true
		}
		m := mc.compile(p.val, whereTarget(r.out), "where ${"+r.src+"}", false)
		conds = append(conds, whereCond{ref: r, m: m})
	}
	return conds, readsReq
}
