package script

import (
	"context"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/dynamic"
)

// run is one rule answering one call.
type run struct {
	e     *Engine
	call  *recorder
	rule  *Rule
	b     *body
	id    uint64
	ctx   context.Context
	types dynamic.TypeResolver
	sc    *scope
	done  bool // the call has its answer (a reply of a single-response method, or a fail)
}

// scriptError wraps an error of the script itself (a template that renders
// to a value the message cannot take, say) as INTERNAL naming the rule.
func (r *run) scriptError(err error) error {
	r.e.log.Warn("script: rule failed", "rule", r.rule.String(), "err", err)
	return status.Errorf(codes.Internal, "script: rule %s: %v", r.rule, err)
}

// execute runs the rule: delay, headers, do, each per inbound message,
// end, then the reply/stream/fail shorthands (or, instead of each, end and
// those, relay); trailers go out at the end.
func (r *run) execute() (err error) {
	b := r.b
	defer func() {
		md, terr := renderMD(b.trailers, r.sc)
		if terr != nil {
			r.e.log.Warn("script: trailers", "rule", r.rule.String(), "err", terr)
		} else if len(md) > 0 {
			r.call.SetTrailer(md)
		}
	}()
	if b.delay > 0 {
		if err := sleep(r.ctx, b.delay); err != nil {
			return err
		}
	}
	if len(b.headers) > 0 {
		md, err := renderMD(b.headers, r.sc)
		if err != nil {
			return r.scriptError(err)
		}
		if err := r.call.SetHeader(md); err != nil {
			return err
		}
	}
	if b.relay != nil {
		// The callee gets every message, the one peeked at during
		// matching included.
		if err := r.steps(b.do); err != nil || r.done {
			return err
		}
		return r.relay(b.relay)
	}
	if b.kind == kindUnary || b.kind == kindServerStream {
		if _, err := r.call.Recv(); err != nil && err != io.EOF {
			return err // the message peeked at during matching
		}
	}
	if err := r.steps(b.do); err != nil || r.done {
		return err
	}
	if b.kind == kindClientStream || b.kind == kindBidi {
		for i := 0; ; i++ {
			m, err := r.call.Recv()
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
			r.sc.req = newView(m, r.types)
			r.sc.reqs = append(r.sc.reqs, r.sc.req)
			r.sc.i = i
			if err := r.steps(b.each); err != nil || r.done {
				return err
			}
		}
		if err := r.steps(b.end); err != nil || r.done {
			return err
		}
	}
	if err := r.steps(b.final); err != nil || r.done {
		return err
	}
	if b.kind == kindUnary || b.kind == kindClientStream {
		return status.Errorf(codes.Internal, "script: rule %s ended without a reply for %s", r.rule, methodName(b.method))
	}
	return nil
}

func (r *run) steps(list []*step) error {
	for _, s := range list {
		if err := r.step(s); err != nil {
			return err
		}
		if r.done {
			return nil
		}
	}
	return nil
}

func (r *run) step(s *step) error {
	switch s.kind {
	case stepReply, stepSend:
		msg, err := s.msg.build(r.sc)
		if err != nil {
			return r.scriptError(err)
		}
		if err := r.call.Send(msg); err != nil {
			return err
		}
		if !r.b.method.IsStreamingServer() {
			r.done = true
		}
	case stepFail:
		r.done = true
		return r.fail(s.fail)
	case stepSleep:
		return sleep(r.ctx, s.sleep)
	case stepSidechannel:
		return r.sidechannel(s.side)
	case stepCall:
		x := &caller{e: r.e, ctx: r.ctx, sc: r.sc, peer: r.call.Peer(), cause: r.id, rule: r.rule.Ref()}
		failure, err := x.call(s.call)
		if err != nil {
			return r.scriptError(err)
		}
		if failure != nil {
			r.done = true
			return r.fail(failure)
		}
	}
	return nil
}

// fail ends the call with the status f describes.
func (r *run) fail(f *failSpec) error {
	st, err := f.status(r.sc)
	if err != nil {
		return r.scriptError(err)
	}
	md, err := renderMD(f.trailers, r.sc)
	if err != nil {
		return r.scriptError(err)
	}
	if len(md) > 0 {
		r.call.SetTrailer(md)
	}
	return st.Err()
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// OnConnect runs the script's on_connect steps for a peer that has just
// completed the handshake (bcctl serve calls it). Calls made go to peer
// unless a step says otherwise. The error says which step failed and why;
// the peer stays connected either way.
func (e *Engine) OnConnect(ctx context.Context, peer calls.Peer) (err error) {
	s := e.Script()
	if len(s.onConnect) == 0 {
		return nil
	}
	defer func() {
		if p := recover(); p != nil {
			e.log.Error("script: panic in on_connect", "peer", peer.BackchannelID, "panic", p)
			err = fmt.Errorf("script: on_connect (%s): %v", s.onConnectPos, p)
		}
	}()
	sc := &scope{peer: peer, vars: s.vars, caps: map[string]any{}, env: e.opts.Env}
	for _, st := range s.onConnect {
		switch st.kind {
		case stepSleep:
			if err := sleep(ctx, st.sleep); err != nil {
				return fmt.Errorf("script: on_connect (%s): %w", st.pos, err)
			}
		case stepCall:
			x := &caller{e: e, ctx: ctx, sc: sc, peer: peer}
			failure, err := x.call(st.call)
			if err != nil {
				return fmt.Errorf("script: on_connect (%s): %w", st.pos, err)
			}
			if failure != nil {
				msg, _ := sc.text(failure.message)
				return fmt.Errorf("script: on_connect (%s): %s", st.pos, msg)
			}
		}
	}
	return nil
}
