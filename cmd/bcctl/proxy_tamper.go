package main

import (
	"context"
	"fmt"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/proxy"
	"github.com/bcctl/bcctl/internal/script"
	"github.com/bcctl/bcctl/internal/serve"
)

// proxyTamper runs bcctl proxy's --script: the script's `rules` decide
// about the clients' forward calls and its `backchannel` rules about the
// upstream's reverse calls, each call relayed (the default, and what
// happens to a call no rule matches), answered by a rule, delayed, or
// relayed and then changed. Calls to methods the schema does not know are
// relayed as they are, and counted for the expectations by the watcher.
//
// The script's `call` steps make calls of the proxy's own, as serve's and
// --answer's do: those of `rules` and on_connect into the clients'
// backchannels (the caller's by default: the client whose forward call is
// being relayed), those of `backchannel` rules to the upstream, on the
// connection of the client whose reverse call is being relayed. They are
// journaled in the hub, numbered with the relayed calls and naming the
// relayed call during which they were made.
type proxyTamper struct {
	decoder *proxy.Decoder
	// upstream names the upstream, as the peer of the calls made to it.
	upstream string
	// forward answers forward calls (rules), reverse reverse calls
	// (backchannel); forward also counts every call for the expectations.
	forward, reverse *script.Engine
	// hub numbers and journals the calls the steps make, and finds the
	// clients' backchannels for them. It is set once the hub exists, before
	// any client can connect.
	hub *serve.Hub
	// made is told of each call a step made, once it is journaled (the
	// printer); nil tells no one.
	made func(*serve.Event)
	// madeCalls counts the calls the steps made.
	madeCalls atomic.Uint64
}

// newProxyTamper runs sc with engines whose relay is the proxy's.
func newProxyTamper(sc *script.Script, decoder *proxy.Decoder, upstream string, opts script.Options) *proxyTamper {
	t := &proxyTamper{decoder: decoder, upstream: upstream}
	opts.Relayer = tamperRelayer{}
	opts.NewID = func() uint64 { return t.hub.NextID() }
	forward := opts
	forward.Caller = script.CallerFunc(func(ctx context.Context, from calls.Peer, to string) ([]script.Target, error) {
		return t.hub.Targets(ctx, from, to)
	})
	forward.Observer = calls.ObserverFunc(t.journalMade)
	t.forward = script.NewEngine(sc, script.Upstream, forward)
	reverse := opts
	reverse.Caller = script.CallerFunc(t.upstreamTarget)
	reverse.Observer = calls.ObserverFunc(func(ev *calls.Event) {
		t.forward.Count(ev.Record())
		t.journalMade(ev)
	})
	t.reverse = script.NewEngine(sc, script.Downstream, reverse)
	return t
}

// journalMade journals a call a `call` step made. (The calls the engines
// answer are relayed calls, which the watcher journals as they end.)
func (t *proxyTamper) journalMade(ev *calls.Event) {
	if ev.Origin != calls.Made {
		return
	}
	t.madeCalls.Add(1)
	e := t.hub.AddCall(ev, serve.ByScript)
	if t.made != nil {
		t.made(e)
	}
}

// upstreamTarget is where the `call` steps of backchannel rules go: the
// upstream, over the connection of the client whose reverse call the rule
// answers, as that client's own forward calls do.
func (t *proxyTamper) upstreamTarget(ctx context.Context, _ calls.Peer, _ string) ([]script.Target, error) {
	cc, ok := proxy.UpstreamOf(ctx)
	if !ok {
		return nil, status.Error(codes.Unavailable, "bcctl proxy: the call has no upstream connection to call on")
	}
	return []script.Target{{Peer: calls.Peer{Addr: t.upstream}, Conn: cc}}, nil
}

// Tamper offers a call whose method the schema knows to the engine of its
// direction.
func (t *proxyTamper) Tamper(c *proxy.Call, caller proxy.Stream, relay proxy.RelayFunc) (bool, error) {
	md := t.decoder.GivenMethod(caller.Context(), c)
	if md == nil {
		return false, nil
	}
	engine := t.forward
	if c.Dir == calls.Reverse {
		engine = t.reverse
	}
	call := &tamperCall{c: c, s: caller, md: md, relay: relay, types: t.decoder.Types(c.Dir)}
	call.ctx = context.WithValue(caller.Context(), tamperCallKey{}, call)
	return true, engine.Respond(call)
}

// count counts a call no engine saw (a method the schema does not know).
func (t *proxyTamper) count(c *proxy.Call) {
	t.forward.Count(calls.Record{Dir: c.Dir, Method: proxy.MethodName(c), Peer: c.Conn.PeerID, Code: c.Status.Code()})
}

// tamperCallKey finds the tamperCall in the context of the call the
// engine relays.
type tamperCallKey struct{}

// tamperRelayer relays a call the engine passes on: to and from the
// (possibly changing) dynamic.Call the engine gives it.
type tamperRelayer struct{}

func (tamperRelayer) Relay(call dynamic.Call) error {
	tc, ok := call.Context().Value(tamperCallKey{}).(*tamperCall)
	if !ok {
		return fmt.Errorf("bcctl proxy: the script relays a call the proxy did not hand it")
	}
	return tc.relay(&dynamicStream{call: call, md: tc.md, types: tc.types})
}

// tamperCall is a relayed call as the script engine answers it: its
// messages decoded by the method's descriptor.
type tamperCall struct {
	ctx   context.Context
	c     *proxy.Call
	s     proxy.Stream
	md    protoreflect.MethodDescriptor
	relay proxy.RelayFunc
	types dynamic.TypeResolver
}

var (
	_ dynamic.Call        = (*tamperCall)(nil)
	_ script.RuleListener = (*tamperCall)(nil)
	_ script.Numbered     = (*tamperCall)(nil)
)

// CallID is the call's journal ID, which the proxy gave it as it arrived:
// the calls the rule's steps make name it as their cause.
func (t *tamperCall) CallID() uint64 { return t.c.ID }

func (t *tamperCall) Context() context.Context              { return t.ctx }
func (t *tamperCall) Method() protoreflect.MethodDescriptor { return t.md }
func (t *tamperCall) Metadata() metadata.MD                 { return t.c.Metadata }
func (t *tamperCall) Peer() calls.Peer {
	return calls.Peer{Addr: addrOrUnknown(t.c.Conn.ClientAddr), BackchannelID: t.c.Conn.PeerID}
}

func (t *tamperCall) Recv() (proto.Message, error) {
	b, err := t.s.Recv()
	if err != nil {
		return nil, err
	}
	m := dynamicpb.NewMessage(t.md.Input())
	if err := (proto.UnmarshalOptions{Resolver: t.types}).Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("bcctl proxy: a request to %s does not parse as %s: %w", dynamic.MethodName(t.md), t.md.Input().FullName(), err)
	}
	return m, nil
}

func (t *tamperCall) Send(m proto.Message) error {
	b, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	return t.s.Send(b)
}

func (t *tamperCall) SetHeader(md metadata.MD) error  { return t.s.SetHeader(md) }
func (t *tamperCall) SendHeader(md metadata.MD) error { return t.s.SendHeader(md) }
func (t *tamperCall) SetTrailer(md metadata.MD)       { t.s.SetTrailer(md) }

// RuleChosen records the rule that answers the call.
func (t *tamperCall) RuleChosen(rule calls.RuleRef) { t.c.Rule = rule }

// dynamicStream is the engine's side of a relayed call as the proxy's
// relay sees it: messages as bytes.
type dynamicStream struct {
	call  dynamic.Call
	md    protoreflect.MethodDescriptor
	types dynamic.TypeResolver
}

var _ proxy.Stream = (*dynamicStream)(nil)

func (d *dynamicStream) Context() context.Context { return d.call.Context() }

func (d *dynamicStream) Recv() ([]byte, error) {
	m, err := d.call.Recv()
	if err != nil {
		return nil, err
	}
	return proto.Marshal(m)
}

func (d *dynamicStream) Send(b []byte) error {
	m := dynamicpb.NewMessage(d.md.Output())
	if err := (proto.UnmarshalOptions{Resolver: d.types}).Unmarshal(b, m); err != nil {
		return fmt.Errorf("bcctl proxy: a response of %s does not parse as %s: %w", dynamic.MethodName(d.md), d.md.Output().FullName(), err)
	}
	return d.call.Send(m)
}

func (d *dynamicStream) SetHeader(md metadata.MD) error  { return d.call.SetHeader(md) }
func (d *dynamicStream) SendHeader(md metadata.MD) error { return d.call.SendHeader(md) }
func (d *dynamicStream) SetTrailer(md metadata.MD)       { d.call.SetTrailer(md) }
