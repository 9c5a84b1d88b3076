package script

import (
	"fmt"
	"regexp"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"
	"gopkg.in/yaml.v3"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/dynamic"
)

// Rule is one entry of `rules` or `backchannel`.
type Rule struct {
	// Name is the rule's `name`, or "rules[2]" / "backchannel[0]" when it
	// has none.
	Name string
	// Pos is where the rule starts in the script.
	Pos calls.Pos
	// Section is the part of the script the rule is in.
	Section Section
	// Method is the method pattern as written in match.method.
	Method string
	// Times is how many calls the rule answers before it retires; 0 means
	// no limit.
	Times int

	index    int              // position in its section
	methodRE *regexp.Regexp   // matches "pkg.Svc/Method"
	bodies   map[string]*body // compiled per matched method
	metadata []mdMatcher      // match.metadata
}

// String formats the rule as `"name" (file:line)`.
func (r *Rule) String() string {
	return fmt.Sprintf("%q (%s)", r.Name, calls.Pos{File: r.Pos.File, Line: r.Pos.Line})
}

// Ref returns the rule's name and position for journals and events.
func (r *Rule) Ref() calls.RuleRef {
	if r == nil {
		return calls.RuleRef{}
	}
	return calls.RuleRef{Name: r.Name, Pos: r.Pos}
}

// body is a rule compiled for one method.
type body struct {
	method   protoreflect.MethodDescriptor
	kind     callKind
	request  matcher // nil: any request
	where    []whereCond
	whereReq bool // a where expression reads req
	delay    time.Duration
	headers  []mdValue
	trailers []mdValue
	do       []*step
	each     []*step
	end      []*step
	final    []*step // the reply/stream/fail shorthands
	relay    *relaySpec
}

// needsRequest reports whether matching must look at the first message.
func (b *body) needsRequest() bool { return b.request != nil || b.whereReq }

// Keys of a rule, of its match, in the order the docs present them.
var (
	ruleKeys  = []string{"name", "match", "times", "delay", "headers", "trailers", "reply", "stream", "fail", "relay", "do", "each", "end"}
	matchKeys = []string{"method", "request", "exact", "metadata", "where"}
)

func (l *loader) rules(n *yaml.Node, sec Section, names map[string]calls.Pos) []*Rule {
	n = deref(n)
	if n == nil || isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		l.d.errorf(n, "%s must be a list of rules, not %s", sec, describeNode(n))
		return nil
	}
	var out []*Rule
	for i, rn := range n.Content {
		if r := l.rule(deref(rn), sec, i, names); r != nil {
			out = append(out, r)
		}
	}
	return out
}

func (l *loader) rule(n *yaml.Node, sec Section, idx int, names map[string]calls.Pos) *Rule {
	d := l.d
	at := fmt.Sprintf("%s[%d]", sec, idx)
	ps, ok := d.pairs(n, at)
	if !ok {
		return nil
	}
	d.checkKeys(ps, at, ruleKeys...)
	get := func(k string) *yaml.Node {
		for _, p := range ps {
			if p.key == k {
				return p.val
			}
		}
		return nil
	}
	r := &Rule{Name: at, Pos: d.pos(n), Section: sec, index: idx, bodies: map[string]*body{}}
	if nn := get("name"); nn != nil {
		if name, ok := d.scalarString(nn, at+".name"); ok && name != "" {
			r.Name = name
		}
	}
	if prev, dup := names[r.Name]; dup {
		d.errorf(n, "%s: rule name %q is already used at %s", at, r.Name, prev)
	} else {
		names[r.Name] = r.Pos
	}
	if r.Name != at {
		at = fmt.Sprintf("%s (%q)", at, r.Name)
	}
	if tn := get("times"); tn != nil {
		if t, ok := d.scalarInt(tn, at+".times"); ok {
			if t == 0 {
				d.errorf(deref(tn), "%s.times must be at least 1 (leave it out for no limit)", at)
			}
			r.Times = t
		}
	}

	answered, calls, anyTo, types := l.upstream, l.backchannel, true, l.upTypes
	if sec == SectionBackchannel {
		answered, calls, anyTo, types = l.backchannel, l.upstream, false, l.backTypes
	}

	mn := get("match")
	if mn == nil {
		d.errorf(n, "%s needs match with at least a method", at)
		return nil
	}
	mps, ok := d.pairs(mn, at+".match")
	if !ok {
		return nil
	}
	d.checkKeys(mps, at+".match", matchKeys...)
	mget := func(k string) *yaml.Node {
		for _, p := range mps {
			if p.key == k {
				return p.val
			}
		}
		return nil
	}
	methodNode := mget("method")
	if methodNode == nil {
		d.errorf(deref(mn), "%s.match needs a method (a full name like pkg.Service/Method, or a glob like pkg.*/*)", at)
		return nil
	}
	pattern, ok := d.scalarString(methodNode, at+".match.method")
	if !ok {
		return nil
	}
	r.Method = pattern
	re, err := compileGlob(normalizeMethod(pattern), true)
	if err != nil {
		d.errorf(deref(methodNode), "%s.match.method: %v", at, err)
		return nil
	}
	r.methodRE = re
	methods, err := answered.resolve(pattern)
	if err != nil {
		d.errorf(deref(methodNode), "%s.match.method: %v", at, err)
		return nil
	}
	exact := false
	if en := mget("exact"); en != nil {
		exact, _ = d.scalarBool(en, at+".match.exact")
	}
	if mdn := mget("metadata"); mdn != nil {
		mps, _ := d.pairs(mdn, at+".match.metadata")
		mc := &matchCompiler{d: d, prefix: at + ".match."}
		for _, p := range mps {
			key := toLowerKey(p.key)
			target := mtarget{str: true}
			if isBinaryKey(key) {
				target = mtarget{fd: whereBytes} // raw bytes, matched like a bytes field
			}
			r.metadata = append(r.metadata, mdMatcher{key: key, m: mc.compile(p.val, target, "metadata "+key, false)})
		}
	}
	for _, md := range methods {
		b := l.body(ps, md, r, at, calls, anyTo, types, mget("request"), exact)
		if wn := mget("where"); wn != nil {
			env := &tenv{input: md.Input(), call: true, matching: true, vars: l.vars}
			b.where, b.whereReq = l.where(wn, env, at+".match.where")
		}
		r.bodies[methodName(md)] = b
	}
	return r
}

func toLowerKey(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// body compiles the rule for one method.
func (l *loader) body(ps []pair, md protoreflect.MethodDescriptor, r *Rule, at string, calls *catalog, anyTo bool, types dynamic.TypeResolver, reqNode *yaml.Node, exact bool) *body {
	d := l.d
	get := func(k string) *yaml.Node {
		for _, p := range ps {
			if p.key == k {
				return p.val
			}
		}
		return nil
	}
	keyNode := func(k string) *yaml.Node {
		for _, p := range ps {
			if p.key == k {
				return p.knode
			}
		}
		return nil
	}
	mname := methodName(md)
	if r.Method != mname {
		at = fmt.Sprintf("%s for %s", at, mname)
	}
	b := &body{method: md, kind: kindOfMethod(md)}
	if reqNode != nil {
		mc := &matchCompiler{d: d, prefix: at + ".match."}
		b.request = mc.compile(reqNode, mtarget{md: md.Input()}, "request", exact)
	}
	if dn := get("delay"); dn != nil {
		b.delay, _ = d.duration(dn, at+".delay")
	}
	clientStreams := md.IsStreamingClient()
	env := &tenv{input: md.Input(), call: true, peer: true, vars: l.vars}
	b.headers = l.metadata(get("headers"), env, at+".headers")
	sc := &stepCtx{l: l, where: at + ".do", method: md, peers: calls, anyTo: anyTo, types: types, env: env, sidechannels: r.Section == SectionRules}
	b.do = sc.steps(get("do"))
	if clientStreams {
		sc.env = sc.env.streaming()
		sc.where = at + ".each"
		b.each = sc.steps(get("each"))
		sc.where = at + ".end"
		b.end = sc.steps(get("end"))
	} else {
		for _, k := range []string{"each", "end"} {
			if kn := keyNode(k); kn != nil {
				d.errorf(kn, "%s.%s: %s is %s; each and end are for client and bidi streams", at, k, mname, b.kind)
			}
		}
	}
	shorthands := 0
	for _, k := range []string{"reply", "stream", "fail", "relay"} {
		if get(k) != nil {
			shorthands++
		}
	}
	if shorthands > 1 {
		d.errorf(deref(ps[0].knode), "%s: give one of reply, stream, fail and relay", at)
	}
	if keyNode("relay") != nil {
		switch {
		case !l.relays:
			d.errorf(keyNode("relay"), "%s.relay: only bcctl proxy relays calls (to its upstream, or into its client's backchannel)", at)
		case len(b.each) > 0 || len(b.end) > 0:
			d.errorf(keyNode("relay"), "%s.relay passes the caller's messages on as they come: each and end have none to read", at)
		default:
			b.relay = l.relay(get("relay"), md, sc.env, types, at+".relay")
		}
	}
	vc := l.values(sc.env, types)
	if rn := get("reply"); rn != nil {
		b.final = append(b.final, &step{kind: stepReply, pos: d.pos(keyNode("reply")), msg: vc.msg(rn, md.Output(), at+".reply")})
	}
	if sn := get("stream"); sn != nil {
		if !md.IsStreamingServer() {
			d.errorf(keyNode("stream"), "%s.stream: %s is %s and returns one message: use reply", at, mname, b.kind)
		} else if list := deref(sn); list == nil || list.Kind != yaml.SequenceNode {
			d.errorf(orNode(list), "%s.stream must be a list of messages, not %s", at, describeNode(list))
		} else {
			for i, it := range list.Content {
				w := fmt.Sprintf("%s.stream[%d]", at, i)
				b.final = append(b.final, &step{kind: stepSend, pos: d.pos(deref(it)), msg: vc.msg(it, md.Output(), w)})
			}
		}
	}
	if fn := get("fail"); fn != nil {
		if f := l.fail(fn, sc.env, at+".fail", types); f != nil {
			b.final = append(b.final, &step{kind: stepFail, pos: d.pos(keyNode("fail")), fail: f})
		}
	}
	b.trailers = l.metadata(get("trailers"), sc.env, at+".trailers")
	if !md.IsStreamingServer() && b.relay == nil {
		answers := 0
		for _, list := range [][]*step{b.do, b.each, b.end, b.final} {
			for _, s := range list {
				if s.kind == stepReply || s.kind == stepFail {
					answers++
				}
			}
		}
		if answers == 0 {
			d.errorf(r.posNode(), "%s: %s is %s and returns one message: the rule needs reply or fail (at the rule or as a step)", at, mname, b.kind)
		}
		if get("reply") != nil {
			for _, list := range [][]*step{b.do, b.each, b.end} {
				for _, s := range list {
					if s.kind == stepReply {
						d.add(s.pos, "%s: reply is given both as a step and at the rule; %s returns one message", at, mname)
					}
				}
			}
		}
	}
	return b
}

// posNode makes a node at the rule's position for diagnostics.
func (r *Rule) posNode() *yaml.Node { return &yaml.Node{Line: r.Pos.Line, Column: r.Pos.Col} }

// stream returns a copy of e where reqs and i are available.
func (e *tenv) streaming() *tenv {
	c := *e
	c.stream = true
	return &c
}
