package main

import (
	"context"
	"fmt"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/proxy"
	"github.com/bcctl/bcctl/internal/script"
)

// proxyTamper runs bcctl proxy's --script: the script's `rules` decide
// about the clients' forward calls and its `backchannel` rules about the
// upstream's reverse calls, each call relayed (the default, and what
// happens to a call no rule matches), answered by a rule, delayed, or
// relayed and then changed. Calls to methods the schema does not know are
// relayed as they are, and counted for the expectations by the watcher.
type proxyTamper struct {
	decoder *proxy.Decoder
	// forward answers forward calls (rules), reverse reverse calls
	// (backchannel); forward also counts every call for the expectations.
	forward, reverse *script.Engine
}

// newProxyTamper runs sc with engines whose relay is the proxy's.
func newProxyTamper(sc *script.Script, decoder *proxy.Decoder, opts script.Options) *proxyTamper {
	t := &proxyTamper{decoder: decoder}
	opts.Relayer = tamperRelayer{}
	t.forward = script.NewEngine(sc, script.Upstream, opts)
	reverse := opts
	reverse.Observer = calls.ObserverFunc(func(ev *calls.Event) { t.forward.Count(ev.Record()) })
	t.reverse = script.NewEngine(sc, script.Downstream, reverse)
	return t
}

// Tamper offers a call whose method the schema knows to the engine of its
// direction.
func (t *proxyTamper) Tamper(c *proxy.Call, caller proxy.Stream, relay proxy.RelayFunc) (bool, error) {
	md := t.decoder.Method(caller.Context(), c)
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
)

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
