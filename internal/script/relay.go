package script

import (
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"gopkg.in/yaml.v3"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/dynamic"
)

// Relayer passes a call on to its real callee: bcctl proxy, whose scripts
// decide per call whether it is relayed (the default), answered by a rule,
// delayed, or relayed and then changed.
type Relayer interface {
	// Relay passes call on to the callee and its answer back to call:
	// the requests call yields (those the rules have looked at first),
	// the callee's header, responses and trailer. It returns the callee's
	// status error, or why the callee could not be reached.
	Relay(call dynamic.Call) error
}

// RuleListener is a dynamic.Call that wants to know which rule answers it
// (bcctl proxy journals the rule with the call it relays). Respond tells
// it before the rule runs; calls no rule matches are not told.
type RuleListener interface {
	RuleChosen(rule calls.RuleRef)
}

// Numbered is a dynamic.Call that arrives with its ID (bcctl proxy numbers
// each call it relays as the call reaches it, in its journal): the engine
// reports the call under that ID, and the calls its `call` steps make name
// it as their Cause. An engine given Numbered calls should be given
// Options.NewID from the same numbering.
type Numbered interface {
	CallID() uint64
}

// relaySpec is a rule's `relay`: pass the call on, then change the
// callee's answer.
type relaySpec struct {
	// reply, when set, holds fields that replace those of each response.
	reply *msgValue
	// fail, when set, replaces the callee's answer: the caller gets this
	// status and none of the responses.
	fail *failSpec
}

// relayKeys are the keys of `relay`.
var relayKeys = []string{"reply", "fail"}

// relay compiles a rule's `relay` for method md.
func (l *loader) relay(n *yaml.Node, md protoreflect.MethodDescriptor, env *tenv, types dynamic.TypeResolver, at string) *relaySpec {
	d := l.d
	spec := &relaySpec{}
	if n = deref(n); n == nil || isNull(n) {
		return spec
	}
	ps, ok := d.pairs(n, at)
	if !ok {
		return spec
	}
	d.checkKeys(ps, at, relayKeys...)
	for _, p := range ps {
		switch p.key {
		case "reply":
			spec.reply = l.values(env, types).msg(p.val, md.Output(), at+".reply")
		case "fail":
			spec.fail = l.fail(p.val, env, at+".fail", types)
		}
	}
	if spec.reply != nil && spec.fail != nil {
		d.errorf(n, "%s: give reply (change the callee's responses) or fail (answer with an error instead), not both", at)
	}
	return spec
}

// relay passes the call on with the engine's Relayer, changing the
// callee's answer as spec says.
func (r *run) relay(spec *relaySpec) error {
	relayer := r.e.opts.Relayer
	if relayer == nil {
		return status.Errorf(codes.Unimplemented, "script: rule %s relays the call, and nothing here relays calls (only bcctl proxy does)", r.rule)
	}
	var call dynamic.Call = r.call
	switch {
	case spec.fail != nil:
		call = &answerDropper{Call: r.call}
	case spec.reply != nil:
		patch, err := spec.reply.build(r.sc)
		if err != nil {
			return r.scriptError(err)
		}
		call = &replyPatcher{Call: r.call, patch: patch}
	}
	err := relayer.Relay(call)
	if spec.fail == nil {
		return err
	}
	if ctxErr := r.ctx.Err(); ctxErr != nil {
		return status.FromContextError(ctxErr).Err()
	}
	return r.fail(spec.fail)
}

// relayUnmatched relays a call no rule matched, when the engine has a
// Relayer; ok is false when it has none.
func (e *Engine) relayUnmatched(call dynamic.Call) (err error, ok bool) {
	if e.opts.Relayer == nil {
		return nil, false
	}
	return e.opts.Relayer.Relay(call), true
}

// replyPatcher sends the callee's responses with the fields of patch set
// over theirs.
type replyPatcher struct {
	dynamic.Call
	patch proto.Message
}

func (p *replyPatcher) Send(msg proto.Message) error {
	m := msg.ProtoReflect()
	pm := p.patch.ProtoReflect()
	if m.Descriptor().FullName() != pm.Descriptor().FullName() {
		return fmt.Errorf("script: relay.reply is a %s, the response a %s", pm.Descriptor().FullName(), m.Descriptor().FullName())
	}
	pm.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		m.Set(m.Descriptor().Fields().ByNumber(fd.Number()), v)
		return true
	})
	return p.Call.Send(msg)
}

// answerDropper keeps the callee's header and responses from the caller,
// who gets the rule's failure instead.
type answerDropper struct {
	dynamic.Call
}

func (d *answerDropper) Send(proto.Message) error     { return nil }
func (d *answerDropper) SendHeader(metadata.MD) error { return nil }
func (d *answerDropper) SetHeader(metadata.MD) error  { return nil }
func (d *answerDropper) SetTrailer(metadata.MD)       {}
