package script

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/dynamic"
)

// caller runs `call` steps for a rule or for on_connect.
type caller struct {
	e     *Engine
	ctx   context.Context
	sc    *scope
	peer  calls.Peer // the peer being answered, or the one that arrived
	cause uint64
	rule  calls.RuleRef
}

// callResult is one call a step made.
type callResult struct {
	peer  calls.Peer
	st    *status.Status
	reply proto.Message
	ok    bool   // the expectation held
	why   string // how it did not
}

// call makes the calls of cs. It returns the failure to end the current
// call with when the expectation is not met, or an error when the script
// itself cannot run (its request does not build).
func (x *caller) call(cs *callSpec) (*failSpec, error) {
	req, err := cs.with.build(x.sc)
	if err != nil {
		return nil, err
	}
	md, err := renderMD(cs.metadata, x.sc)
	if err != nil {
		return nil, err
	}
	var results []*callResult
	var targets []Target
	if x.e.opts.Caller == nil {
		err = status.Error(codes.Unavailable, "this side has no connection to call on (no Caller configured)")
	} else {
		targets, err = x.e.opts.Caller.Targets(x.ctx, x.peer, cs.to)
	}
	if err != nil {
		st, ok := status.FromError(err)
		if !ok {
			st = status.New(codes.Unavailable, err.Error())
		}
		target := x.peer
		if id, perr := strconv.ParseUint(cs.to, 10, 64); perr == nil {
			target = calls.Peer{BackchannelID: id}
		}
		results = []*callResult{{peer: target, st: st}}
	} else {
		results = make([]*callResult, len(targets))
		var wg sync.WaitGroup
		for i, t := range targets {
			if len(targets) == 1 {
				results[i] = x.invoke(cs, t, req, md)
				break
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] = x.invoke(cs, t, req, md)
			}()
		}
		wg.Wait()
	}
	failed := 0
	for _, r := range results {
		r.ok, r.why = cs.check(r)
		if !r.ok {
			failed++
		}
	}
	if cs.as != "" {
		v, err := captureJSON(results, failed, x.sc, cs.types)
		if err != nil {
			return nil, err
		}
		x.sc.caps[cs.as] = v
	}
	if !cs.hasExpect || failed == 0 {
		return nil, nil
	}
	if cs.orElse != nil {
		return cs.orElse, nil
	}
	var first *callResult
	for _, r := range results {
		if !r.ok {
			first = r
			break
		}
	}
	msg := fmt.Sprintf("call %s (%s) to %s: %s", methodName(cs.method), cs.pos, x.describe(first.peer), first.why)
	if len(results) > 1 {
		msg += fmt.Sprintf(" (%d of %d calls failed)", failed, len(results))
	}
	return &failSpec{pos: cs.pos, code: codes.Aborted, message: &template{parts: []tpart{{lit: msg}}}}, nil
}

// describe names the peer a call went to in failure messages.
func (x *caller) describe(p calls.Peer) string {
	switch {
	case x.e.role == Downstream:
		return "the upstream"
	case p.BackchannelID != 0:
		return fmt.Sprintf("peer %d", p.BackchannelID)
	case p.Addr != "":
		return "peer " + p.Addr
	}
	return "the caller"
}

// invoke makes one call and reports it to the observer.
func (x *caller) invoke(cs *callSpec, t Target, req proto.Message, md metadata.MD) *callResult {
	ctx, cancel := context.WithTimeout(x.ctx, cs.timeout)
	defer cancel()
	if len(md) > 0 {
		ctx = metadata.NewOutgoingContext(ctx, md)
	}
	reply := dynamicpb.NewMessage(cs.method.Output())
	var header, trailer metadata.MD
	start := time.Now()
	err := t.Conn.Invoke(ctx, cs.fullMethod, req, reply, grpc.Header(&header), grpc.Trailer(&trailer))
	st := statusOf(toStatus(err))
	ev := &calls.Event{
		ID: x.e.newID(), Cause: x.cause, Dir: x.e.madeDir(), Origin: calls.Made, Peer: t.Peer,
		Method: methodName(cs.method), Metadata: md, Header: header, Trailer: trailer,
		Requests: []proto.Message{req}, Status: st, Start: start, Duration: time.Since(start),
		Rule: x.rule, Step: cs.pos,
	}
	res := &callResult{peer: t.Peer, st: st}
	if err == nil {
		ev.Responses = []proto.Message{reply}
		res.reply = reply
	}
	x.e.count(ev.Record())
	if x.e.opts.Observer != nil {
		x.e.opts.Observer.ObserveCall(ev)
	}
	return res
}

// check tests a result against the step's expect.
func (cs *callSpec) check(r *callResult) (bool, string) {
	if !cs.hasExpect {
		return true, ""
	}
	want := cs.codes
	if len(want) == 0 {
		want = []codes.Code{codes.OK}
	}
	codeOK := false
	var names []string
	for _, c := range want {
		names = append(names, calls.CodeName(c))
		if r.st.Code() == c {
			codeOK = true
		}
	}
	if !codeOK {
		why := fmt.Sprintf("code is %s, want %s", calls.CodeName(r.st.Code()), strings.Join(names, " or "))
		if r.st.Message() != "" {
			why += ` (message "` + r.st.Message() + `")`
		}
		return false, why
	}
	if cs.message != nil {
		if ok, why := cs.message.match(r.st.Message(), true); !ok {
			return false, why
		}
	}
	if cs.reply != nil {
		if r.reply == nil {
			return false, "there is no reply to check (code " + calls.CodeName(r.st.Code()) + ")"
		}
		v, err := messageJSON(r.reply, cs.types)
		if err != nil {
			return false, err.Error()
		}
		if ok, why := cs.reply.match(v, true); !ok {
			return false, why
		}
	}
	return true, ""
}

// captureJSON is what `as NAME` makes available: the fields of the first
// call that missed its expectation (or of the first call), plus count,
// failed and calls (every call).
func captureJSON(results []*callResult, failed int, sc *scope, types dynamic.TypeResolver) (map[string]any, error) {
	each := make([]any, 0, len(results))
	var pick map[string]any
	for _, r := range results {
		// A call that failed has no reply: its fields read as absent
		// (empty in text), never as the zero values of a reply.
		var reply any
		if r.reply != nil {
			v, err := messageJSON(r.reply, types)
			if err != nil {
				return nil, err
			}
			reply = v
		}
		c := map[string]any{
			"code": calls.CodeName(r.st.Code()), "message": r.st.Message(), "reply": reply,
			"ok": r.ok, "peer": peerJSON(r.peer),
		}
		each = append(each, c)
		if pick == nil || (!r.ok && pick["ok"] == true) {
			pick = c
		}
	}
	out := map[string]any{"code": "OK", "message": "", "reply": nil, "ok": true, "peer": peerJSON(sc.peer)}
	for k, v := range pick {
		out[k] = v
	}
	out["ok"] = failed == 0
	out["count"] = jsonInt(len(results))
	out["failed"] = jsonInt(failed)
	out["calls"] = each
	return out, nil
}
