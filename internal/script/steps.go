package script

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"gopkg.in/yaml.v3"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/words"
)

// stepKind names what a step does.
type stepKind string

// Step kinds, as written in scripts.
const (
	stepReply stepKind = "reply"
	stepSend  stepKind = "send"
	stepFail  stepKind = "fail"
	stepSleep stepKind = "sleep"
	stepCall  stepKind = "call"
)

// stepKinds lists every step kind the loader accepts.
var stepKinds = []string{string(stepReply), string(stepSend), string(stepFail), string(stepSleep), string(stepCall), string(stepSidechannel)}

// step is one compiled entry of do, each, end or on_connect.
type step struct {
	kind  stepKind
	pos   calls.Pos
	msg   *msgValue // reply, send
	fail  *failSpec
	sleep time.Duration
	call  *callSpec
	side  *sidechannelSpec
}

// mdValue is one metadata key with templated values.
type mdValue struct {
	key  string
	vals []*template
}

// renderMD renders metadata values.
func renderMD(list []mdValue, s *scope) (metadata.MD, error) {
	if len(list) == 0 {
		return nil, nil
	}
	md := metadata.MD{}
	for _, kv := range list {
		for _, t := range kv.vals {
			v, err := s.render(t)
			if err != nil {
				return nil, err
			}
			if b, ok := v.(bytesVal); ok && isBinaryKey(kv.key) {
				md.Append(kv.key, string(b)) // gRPC sends -bin values as base64
				continue
			}
			md.Append(kv.key, stringify(v))
		}
	}
	return md, nil
}

// Target kinds of a call step.
const (
	targetCaller = "" // the peer whose call is being answered (or the upstream)
	targetAll    = "all"
)

// callSpec is a compiled `call` step.
type callSpec struct {
	pos        calls.Pos
	method     protoreflect.MethodDescriptor
	fullMethod string // "/pkg.Svc/Method"
	with       *msgValue
	metadata   []mdValue
	timeout    time.Duration
	to         string // targetCaller, targetAll, or a decimal peer ID
	hasExpect  bool
	codes      []codes.Code // nil: OK
	reply      matcher      // nil: any reply
	message    matcher      // nil: any message
	as         string
	orElse     *failSpec            // nil: fail with ABORTED and an explanation
	types      dynamic.TypeResolver // resolves Any in the called method's messages
}

// DefaultCallTimeout bounds a `call` step that gives no timeout.
const DefaultCallTimeout = 10 * time.Second

// callKind describes a method's streaming shape.
type callKind int

const (
	kindUnary callKind = iota
	kindServerStream
	kindClientStream
	kindBidi
)

func kindOfMethod(md protoreflect.MethodDescriptor) callKind {
	switch {
	case md.IsStreamingClient() && md.IsStreamingServer():
		return kindBidi
	case md.IsStreamingClient():
		return kindClientStream
	case md.IsStreamingServer():
		return kindServerStream
	}
	return kindUnary
}

func (k callKind) String() string {
	return [...]string{"unary", "server-streaming", "client-streaming", "bidi-streaming"}[k]
}

// stepCtx is where a list of steps is compiled.
type stepCtx struct {
	l      *loader
	where  string                        // "rules[0].do", ...
	method protoreflect.MethodDescriptor // the answered method; nil in on_connect
	peers  *catalog                      // methods a call step may invoke
	anyTo  bool                          // call steps may address other peers
	types  dynamic.TypeResolver          // resolves Any in the answered method's messages
	env    *tenv
	// sidechannels: sidechannel steps may open the caller's sidechannel
	// (the rules bcctl serve answers forward calls with).
	sidechannels bool
}

// steps compiles a list of steps, threading `as` names through env.
func (c *stepCtx) steps(n *yaml.Node) []*step {
	n = deref(n)
	if n == nil || isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		c.l.d.errorf(n, "%s must be a list of steps, not %s", c.where, describeNode(n))
		return nil
	}
	var out []*step
	for i, sn := range n.Content {
		at := fmt.Sprintf("%s[%d]", c.where, i)
		if s := c.step(deref(sn), at); s != nil {
			out = append(out, s)
		}
	}
	return out
}

func (c *stepCtx) step(n *yaml.Node, at string) *step {
	d := c.l.d
	ps, ok := d.pairs(n, at+" (a step)")
	if !ok {
		return nil
	}
	if len(ps) != 1 {
		var keys []string
		for _, p := range ps {
			keys = append(keys, p.key)
		}
		d.errorf(orNode(n), "%s: a step has exactly one of %s; found %s", at, strings.Join(stepKinds, ", "), strings.Join(keys, ", "))
		return nil
	}
	p := ps[0]
	st := &step{kind: stepKind(p.key), pos: d.pos(p.knode)}
	at += "." + p.key
	switch st.kind {
	case stepReply, stepSend:
		if c.method == nil {
			d.errorf(p.knode, "%s: there is no call to %s to in %s", at, p.key, c.where)
			return nil
		}
		if st.kind == stepSend && !c.method.IsStreamingServer() {
			d.errorf(p.knode, "%s: send needs a server-streaming or bidi method; %s is %s: use reply", at, methodName(c.method), kindOfMethod(c.method))
			return nil
		}
		vc := c.l.values(c.env, c.types)
		st.msg = vc.msg(p.val, c.method.Output(), at)
	case stepFail:
		if c.method == nil {
			d.errorf(p.knode, "%s: there is no call to fail in %s", at, c.where)
			return nil
		}
		st.fail = c.l.fail(p.val, c.env, at, c.types)
		if st.fail == nil {
			return nil
		}
	case stepSleep:
		dur, ok := d.duration(p.val, at)
		if !ok {
			return nil
		}
		st.sleep = dur
	case stepCall:
		st.call = c.callStep(p.val, at)
		if st.call == nil {
			return nil
		}
		if st.call.as != "" {
			c.env = c.env.withCapture(st.call.as, st.call.method.Output())
		}
	case stepSidechannel:
		st.side = c.sidechannelStep(p.val, at)
		if st.side == nil {
			return nil
		}
	default:
		d.errorf(p.knode, "%s: unknown step %q%s", at, p.key, words.DidYouMean(p.key, stepKinds))
		return nil
	}
	return st
}

// Keys of a call step.
var callKeys = []string{"method", "with", "metadata", "timeout", "to", "expect", "as", "else"}

var captureName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (c *stepCtx) callStep(n *yaml.Node, at string) *callSpec {
	d := c.l.d
	ps, ok := d.pairs(n, at)
	if !ok {
		return nil
	}
	d.checkKeys(ps, at, callKeys...)
	get := func(k string) *yaml.Node {
		for _, p := range ps {
			if p.key == k {
				return p.val
			}
		}
		return nil
	}
	cs := &callSpec{pos: d.pos(deref(n)), timeout: DefaultCallTimeout}
	mn := get("method")
	if mn == nil {
		d.errorf(orNode(deref(n)), "%s: call needs a method", at)
		return nil
	}
	name, ok := d.scalarString(mn, at+".method")
	if !ok {
		return nil
	}
	if isGlob(normalizeMethod(name)) {
		d.errorf(deref(mn), "%s.method: a call names one method, not a pattern (%q)", at, name)
		return nil
	}
	ms, err := c.peers.resolve(name)
	if err != nil {
		d.errorf(deref(mn), "%s.method: %v", at, err)
		return nil
	}
	cs.method = ms[0]
	cs.fullMethod = "/" + methodName(cs.method)
	if k := kindOfMethod(cs.method); k != kindUnary {
		d.errorf(deref(mn), "%s.method: call supports unary methods; %s is %s", at, methodName(cs.method), k)
		return nil
	}
	types := withGlobalTypes(c.peers.schema.Types())
	cs.types = types
	vc := c.l.values(c.env, types)
	cs.with = vc.msg(get("with"), cs.method.Input(), at+".with")
	cs.metadata = c.l.metadata(get("metadata"), c.env, at+".metadata")
	if tn := get("timeout"); tn != nil {
		if dur, ok := d.duration(tn, at+".timeout"); ok {
			if dur <= 0 {
				d.errorf(deref(tn), "%s.timeout must be positive", at)
			}
			cs.timeout = dur
		}
	}
	if tn := deref(get("to")); tn != nil {
		to, ok := d.scalarString(tn, at+".to")
		if ok {
			switch {
			case hasTemplate(to):
				d.errorf(tn, "%s.to: the target must be written out (caller, all, or a peer ID), never computed from a request", at)
			case to == "caller" || to == "":
				cs.to = targetCaller
			case !c.anyTo:
				d.errorf(tn, "%s.to: %s calls only go to the upstream; leave out to", at, c.where)
			case to == targetAll:
				cs.to = targetAll
			default:
				if _, err := strconv.ParseUint(to, 10, 64); err != nil {
					d.errorf(tn, "%s.to must be caller, all, or a peer ID (a number), not %q", at, to)
				}
				cs.to = to
			}
		}
	}
	var afterEnv *tenv
	if an := get("as"); an != nil {
		as, ok := d.scalarString(an, at+".as")
		if ok {
			switch {
			case !captureName.MatchString(as):
				d.errorf(deref(an), "%s.as: %q is not a name (letters, digits, _)", at, as)
			case isBuiltinRoot(as):
				d.errorf(deref(an), "%s.as: %q is a built-in name; choose another", at, as)
			default:
				cs.as = as
			}
		}
	}
	afterEnv = c.env
	if cs.as != "" {
		afterEnv = c.env.withCapture(cs.as, cs.method.Output())
	}
	if en := get("expect"); en != nil {
		cs.hasExpect = true
		c.expect(en, cs, at+".expect")
	}
	if en := get("else"); en != nil {
		if !cs.hasExpect {
			d.errorf(deref(en), "%s.else needs an expect to act on", at)
		}
		if c.method == nil {
			d.errorf(deref(en), "%s.else: there is no call to fail in %s", at, c.where)
		} else {
			cs.orElse = c.l.fail(en, afterEnv, at+".else", c.types)
		}
	}
	return cs
}

func isBuiltinRoot(s string) bool {
	for _, r := range builtinRoots {
		if r == s {
			return true
		}
	}
	return false
}

// Keys of a call step's expect.
var expectCallKeys = []string{"code", "reply", "message"}

func (c *stepCtx) expect(n *yaml.Node, cs *callSpec, at string) {
	d := c.l.d
	ps, ok := d.pairs(n, at)
	if !ok {
		return
	}
	d.checkKeys(ps, at, expectCallKeys...)
	mc := &matchCompiler{d: d, prefix: at + "."}
	for _, p := range ps {
		switch p.key {
		case "code":
			v := deref(p.val)
			if v != nil && v.Kind == yaml.SequenceNode {
				for _, it := range v.Content {
					if code, ok := d.code(it, at+".code"); ok {
						cs.codes = append(cs.codes, code)
					}
				}
				continue
			}
			if code, ok := d.code(v, at+".code"); ok {
				cs.codes = append(cs.codes, code)
			}
		case "reply":
			cs.reply = mc.compile(p.val, mtarget{md: cs.method.Output()}, "reply", false)
		case "message":
			cs.message = mc.compile(p.val, mtarget{str: true}, "message", false)
		}
	}
}

// Keys of fail and else.
var failKeys = []string{"code", "message", "details", "trailers"}

// anyDescriptor is google.protobuf.Any, the type of fail.details entries.
var anyDescriptor = (&anypb.Any{}).ProtoReflect().Descriptor()

func (l *loader) fail(n *yaml.Node, env *tenv, at string, types dynamic.TypeResolver) *failSpec {
	d := l.d
	ps, ok := d.pairs(n, at)
	if !ok {
		return nil
	}
	d.checkKeys(ps, at, failKeys...)
	f := &failSpec{pos: d.pos(deref(n)), message: &template{parts: []tpart{{}}}}
	hasCode := false
	for _, p := range ps {
		switch p.key {
		case "code":
			hasCode = true
			code, ok := d.code(p.val, at+".code")
			if !ok {
				continue
			}
			if code == codes.OK {
				d.errorf(deref(p.val), "%s.code: OK is not a failure; use reply", at)
				continue
			}
			f.code = code
		case "message":
			f.message = l.text(p.val, env, at+".message")
		case "details":
			v := deref(p.val)
			if v == nil || v.Kind != yaml.SequenceNode {
				d.errorf(orNode(v), "%s.details must be a list of messages with \"@type\", not %s", at, describeNode(v))
				continue
			}
			vc := l.values(env, types)
			for i, it := range v.Content {
				f.details = append(f.details, vc.msg(it, anyDescriptor, fmt.Sprintf("%s.details[%d]", at, i)))
			}
		case "trailers":
			f.trailers = l.metadata(p.val, env, at+".trailers")
		}
	}
	if !hasCode {
		d.errorf(orNode(deref(n)), "%s needs a code (a name such as NOT_FOUND, or a number)", at)
	}
	return f
}

// text compiles a scalar as a template string.
func (l *loader) text(n *yaml.Node, env *tenv, at string) *template {
	s, ok := l.d.scalarString(n, at)
	if !ok {
		return &template{parts: []tpart{{}}}
	}
	t, err := parseTemplate(s)
	if err == nil {
		err = env.check(t)
	}
	if err != nil {
		l.d.errorf(deref(n), "%s: %v", at, err)
		return &template{parts: []tpart{{}}}
	}
	return t
}

var mdKey = regexp.MustCompile(`^[0-9a-z_.-]+$`)

// metadata compiles a mapping of metadata keys to a value or list of
// values.
func (l *loader) metadata(n *yaml.Node, env *tenv, at string) []mdValue {
	ps, ok := l.d.pairs(n, at)
	if !ok {
		return nil
	}
	var out []mdValue
	for _, p := range ps {
		key := strings.ToLower(p.key)
		if !mdKey.MatchString(key) || strings.HasPrefix(key, "grpc-") {
			l.d.errorf(p.knode, "%s: %q is not a metadata key you can set (lower-case letters, digits, - _ .; not grpc-)", at, p.key)
			continue
		}
		kv := mdValue{key: key}
		v := deref(p.val)
		items := []*yaml.Node{v}
		if v != nil && v.Kind == yaml.SequenceNode {
			items = v.Content
		}
		for _, it := range items {
			kv.vals = append(kv.vals, l.mdValue(it, key, env, at+"."+key))
		}
		out = append(out, kv)
	}
	return out
}

// mdValue compiles one metadata value: text (a template), or a raw-bytes
// form, which a key ending in -bin takes as it is and any other key only
// when it is printable ASCII.
func (l *loader) mdValue(n *yaml.Node, key string, env *tenv, at string) *template {
	if !isBytesForm(n) {
		return l.text(n, env, at)
	}
	b, err := rawBytes(n)
	if err == nil && !isBinaryKey(key) && !printableASCII(b) {
		err = fmt.Errorf("%q does not end in -bin, so its values are printable ASCII, and these bytes (%s) are not", key, showBytes(b))
	}
	if err != nil {
		l.d.errorf(deref(n), "%s: %v", at, err)
		return &template{parts: []tpart{{}}}
	}
	return &template{src: string(b), parts: []tpart{{lit: string(b)}}}
}

// duration reads a Go duration ("250ms", "1.5s", "2m").
func (d *diags) duration(n *yaml.Node, what string) (time.Duration, bool) {
	n = deref(n)
	if n == nil || n.Kind != yaml.ScalarNode {
		d.errorf(orNode(n), "%s must be a duration such as 250ms or 2s, not %s", what, describeNode(n))
		return 0, false
	}
	dur, err := time.ParseDuration(n.Value)
	if err != nil || dur < 0 {
		d.errorf(n, "%s must be a duration such as 250ms or 2s, not %q", what, n.Value)
		return 0, false
	}
	return dur, true
}
