package script

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/words"
)

// Role says which side of a backchannel connection an engine plays.
type Role int

const (
	// Upstream is bcctl serve: it answers forward calls with `rules`, and
	// its `call` steps go into peers' backchannels (reverse calls).
	Upstream Role = iota + 1
	// Downstream is bcctl call/connect: it answers reverse calls with
	// `backchannel` rules, and its `call` steps go to the upstream.
	Downstream
)

// String returns "upstream" or "downstream".
func (r Role) String() string {
	if r == Downstream {
		return "downstream"
	}
	return "upstream"
}

// Options configure an Engine. Every field is optional.
type Options struct {
	// Caller connects `call` steps to the other side. Without one, a call
	// step ends with UNAVAILABLE (which its expect/else may handle).
	Caller Caller
	// Observer receives an event per finished call.
	Observer calls.Observer
	// Logger reports rule failures and panics; nil discards.
	Logger *slog.Logger
	// Env looks up `${env.NAME}`; nil means os.Getenv.
	Env func(string) string
	// Relayer passes calls on to their real callee (bcctl proxy): for the
	// rules that `relay`, and for the calls no rule matches, which are
	// then relayed instead of answered UNIMPLEMENTED.
	Relayer Relayer
	// NewID numbers the events the engine reports (calls.Event.ID and
	// Cause); nil numbers them from 1. A Numbered call keeps its own ID.
	NewID func() uint64
	// Cut, when set, reports whether the calls still running are being cut
	// short (a server stopping after its grace period): a call that ends
	// while it does is not counted for the expectations, as the other side
	// never saw it through.
	Cut func() bool
}

// Engine runs a script: it answers calls with the script's rules (it is a
// dynamic.Responder), makes the calls of `call` steps, runs on_connect, and
// counts calls for the expectations. It is safe for concurrent use: rules
// are matched and their `times` uses claimed atomically.
type Engine struct {
	role  Role
	opts  Options
	log   *slog.Logger
	rules atomic.Pointer[ruleset]
	ids   atomic.Uint64
	tally *tally
}

var _ dynamic.Responder = (*Engine)(nil)

// ruleset pairs a script with the use counts of its rules.
type ruleset struct {
	script *Script
	sec    Section
	rules  []*Rule
	used   []atomic.Int64
}

func newRuleset(s *Script, role Role) *ruleset {
	sec := SectionRules
	if role == Downstream {
		sec = SectionBackchannel
	}
	rules := s.section(sec)
	return &ruleset{script: s, sec: sec, rules: rules, used: make([]atomic.Int64, len(rules))}
}

// NewEngine returns an engine that plays role with script s.
func NewEngine(s *Script, role Role, opts Options) *Engine {
	if role != Downstream {
		role = Upstream
	}
	e := &Engine{role: role, opts: opts, log: opts.Logger, tally: newTally()}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.opts.Env == nil {
		e.opts.Env = os.Getenv
	}
	e.rules.Store(newRuleset(s, role))
	return e
}

// Script returns the script in force.
func (e *Engine) Script() *Script { return e.rules.Load().script }

// Reload puts s in force for calls that start from now on; calls in flight
// finish with the old script. Use counts start afresh; the calls counted
// for expectations are kept.
func (e *Engine) Reload(s *Script) { e.rules.Store(newRuleset(s, e.role)) }

// answeredDir is the direction of the calls this engine answers.
func (e *Engine) answeredDir() calls.Direction {
	if e.role == Downstream {
		return calls.Reverse
	}
	return calls.Forward
}

// madeDir is the direction of the calls `call` steps make.
func (e *Engine) madeDir() calls.Direction {
	if e.role == Downstream {
		return calls.Forward
	}
	return calls.Reverse
}

// newID numbers an event (Options.NewID).
func (e *Engine) newID() uint64 {
	if e.opts.NewID != nil {
		return e.opts.NewID()
	}
	return e.ids.Add(1)
}

// callID is the ID of a call the engine answers: its own when it is
// Numbered, else a new one.
func (e *Engine) callID(call dynamic.Call) uint64 {
	if n, ok := call.(Numbered); ok {
		return n.CallID()
	}
	return e.newID()
}

// Count counts a call the engine did not handle itself (bcctl call's own
// forward call, a reverse call answered by hand in the TUI) for the
// expectations.
func (e *Engine) Count(rec calls.Record) { e.count(rec) }

// count counts rec for the expectations, unless calls are being cut.
func (e *Engine) count(rec calls.Record) {
	if e.opts.Cut != nil && e.opts.Cut() {
		return
	}
	e.tally.add(rec)
}

// Check checks the expectations of the script in force against every call
// counted so far.
func (e *Engine) Check() *Report { return e.tally.check(e.Script().Expectations) }

// Respond answers call with the first matching rule, or with UNIMPLEMENTED
// naming the closest rule and why it missed. It never panics: a rule that
// fails fails only this call (INTERNAL, logged).
func (e *Engine) Respond(call dynamic.Call) error { return e.respond(call, nil) }

// RespondReceived is Respond for a call whose first messages the caller has
// already received (the TUI shows a request before the user lets the
// script answer): received are seen by the rules before any later message.
func (e *Engine) RespondReceived(call dynamic.Call, received ...proto.Message) error {
	return e.respond(call, received)
}

// MatchResult is the answer to "which rule would answer this call".
type MatchResult struct {
	// Rule is the rule that would answer, nil when none would.
	Rule *Rule
	// Reason explains a miss in the words of the UNIMPLEMENTED status.
	Reason string
}

// Match reports which rule would answer a call of method with metadata md
// and first request req (nil for streams not yet started), without
// answering or using up a `times` use.
func (e *Engine) Match(method protoreflect.MethodDescriptor, md metadata.MD, req proto.Message) MatchResult {
	rs := e.rules.Load()
	in := &matchIn{md: md, haveFirst: req != nil, vars: rs.script.vars, env: e.opts.Env}
	if req != nil {
		in.first = newView(req, rs.script.types(e.role))
	}
	name := methodName(method)
	if md == nil {
		in.md = metadata.MD{}
	}
	for i, r := range rs.rules {
		if ok, _ := r.test(name, in); !ok {
			continue
		}
		if r.Times > 0 && rs.used[i].Load() >= int64(r.Times) {
			continue
		}
		return MatchResult{Rule: r}
	}
	return MatchResult{Reason: rs.explain(name, in)}
}

// matchIn is what rules are matched against: a call's metadata and first
// message, and what `where` expressions may read besides.
type matchIn struct {
	md        metadata.MD
	first     *msgView
	haveFirst bool
	vars      map[string]any
	env       func(string) string
}

// scope is what `where` expressions evaluate against.
func (in *matchIn) scope() *scope {
	return &scope{req: in.first, md: in.md, vars: in.vars, env: in.env}
}

// types returns the resolver for messages of the calls role answers.
func (s *Script) types(role Role) dynamic.TypeResolver {
	if role == Downstream {
		return s.backTypes
	}
	return s.upTypes
}

// test reports whether the rule matches a call (ignoring `times`); why
// says how it missed, score how close it came.
func (r *Rule) test(method string, in *matchIn) (ok bool, why string) {
	b := r.bodies[method]
	if b == nil {
		if r.methodRE.MatchString(method) {
			return false, fmt.Sprintf("%s was not in the schema when the script was loaded", method)
		}
		return false, fmt.Sprintf("method is %s, not %s", method, r.Method)
	}
	for _, m := range r.metadata {
		if ok, why := m.match(in.md); !ok {
			return false, why
		}
	}
	if b.needsRequest() && !in.haveFirst {
		return false, "the stream ended before its first message"
	}
	if b.request != nil {
		v, err := in.first.json()
		if err != nil {
			return false, err.Error()
		}
		if ok, why := b.request.match(v, true); !ok {
			return false, why
		}
	}
	if len(b.where) > 0 {
		sc := in.scope()
		for _, w := range b.where {
			if ok, why := w.match(sc); !ok {
				return false, why
			}
		}
	}
	return true, ""
}

// explain says why no rule matched, naming the closest rule: one that
// matched but has retired, else the one meeting the largest share of its
// conditions, else the one whose method pattern is nearest.
func (rs *ruleset) explain(method string, in *matchIn) string {
	switch {
	case len(rs.rules) == 0 && rs.script.none:
		return fmt.Sprintf("no rule matched %s: no script was given", method)
	case len(rs.rules) == 0:
		return fmt.Sprintf("no rule matched %s: the script %s has no %s", method, rs.script.Name, rs.sec)
	}
	best, bestWhy := -1, ""
	bestScore, bestHits, bestDist := -1.0, -1, 1<<30
	for i, r := range rs.rules {
		ok, why := r.test(method, in)
		score, hits, dist := 0.0, 0, 0
		switch {
		case ok: // it matches, so it has retired
			score = 4
			why = fmt.Sprintf("it has retired after answering %s (times: %d)", words.Count(rs.used[i].Load(), "call"), r.Times)
		case r.bodies[method] == nil:
			if r.methodRE.MatchString(method) {
				score = 1
			}
			dist = words.EditDistance(normalizeMethod(r.Method), method)
		default:
			h, t := r.closeness(method, in)
			score, hits = 2+float64(h)/float64(max(t, 1)), h
		}
		better := score > bestScore ||
			(score == bestScore && hits > bestHits) ||
			(score == bestScore && hits == bestHits && dist < bestDist)
		if better {
			best, bestWhy, bestScore, bestHits, bestDist = i, why, score, hits, dist
		}
	}
	return fmt.Sprintf("no rule matched %s; closest: %s: %s", method, rs.rules[best], bestWhy)
}

// closeness counts the metadata, request and where conditions a call
// meets.
func (r *Rule) closeness(method string, in *matchIn) (hit, total int) {
	for _, m := range r.metadata {
		total++
		if ok, _ := m.match(in.md); ok {
			hit++
		}
	}
	b := r.bodies[method]
	if len(b.where) > 0 {
		sc := in.scope()
		for _, w := range b.where {
			total++
			if ok, _ := w.match(sc); ok {
				hit++
			}
		}
	}
	if b.request == nil {
		return hit, total
	}
	if !in.haveFirst {
		return hit, total + 1
	}
	v, err := in.first.json()
	if err != nil {
		return hit, total + 1
	}
	h, t := closeness(b.request, v, true)
	return hit + h, total + t
}

// respond is Respond with messages already received.
func (e *Engine) respond(call dynamic.Call, received []proto.Message) (err error) {
	rs := e.rules.Load()
	start := time.Now()
	rec := &recorder{Call: call, pending: received}
	rec.in = append(rec.in, received...)
	method := call.Method()
	md := call.Metadata()
	if md == nil {
		md = metadata.MD{}
	}
	ev := &calls.Event{
		ID: e.callID(call), Dir: e.answeredDir(), Origin: calls.Answered, Peer: call.Peer(),
		Method: methodName(method), Metadata: md, Start: start,
	}
	defer func() {
		if p := recover(); p != nil {
			e.log.Error("script: panic while answering a call", "method", ev.Method, "rule", ev.Rule.String(), "panic", p, "stack", string(debug.Stack()))
			err = status.Errorf(codes.Internal, "script: rule %s failed: %v", ev.Rule, p)
		}
		err = toStatus(err)
		ev.Status = statusOf(err)
		ev.Requests, ev.Responses, ev.Header, ev.Trailer = rec.received(), rec.out, rec.header, rec.trailer
		ev.Sidechannel = rec.sidechannel
		ev.Duration = time.Since(start)
		e.count(ev.Record())
		if e.opts.Observer != nil {
			e.opts.Observer.ObserveCall(ev)
		}
	}()

	types := rs.script.types(e.role)
	name := ev.Method
	kind := kindOfMethod(method)
	in := &matchIn{md: md, vars: rs.script.vars, env: e.opts.Env}
	peeked := false
	peek := func() error {
		if peeked {
			return nil
		}
		peeked = true
		m, err := rec.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		rec.unread(m)
		in.first, in.haveFirst = newView(m, types), true
		return nil
	}
	if kind == kindUnary || kind == kindServerStream {
		if err := peek(); err != nil {
			return err
		}
	}
	var rule *Rule
	var b *body
	var n int64
	for i, r := range rs.rules {
		rb := r.bodies[name]
		if rb == nil {
			continue
		}
		if rb.needsRequest() {
			if err := peek(); err != nil {
				return err
			}
		}
		if ok, _ := r.test(name, in); !ok {
			continue
		}
		if got, ok := claim(&rs.used[i], r.Times); ok {
			rule, b, n = r, rb, got
			break
		}
	}
	if rule == nil {
		if err, ok := e.relayUnmatched(rec); ok {
			return err
		}
		return status.Error(codes.Unimplemented, rs.explain(name, in))
	}
	ev.Rule = rule.Ref()
	if l, ok := call.(RuleListener); ok {
		l.RuleChosen(ev.Rule)
	}
	r := &run{
		e: e, call: rec, rule: rule, b: b, id: ev.ID, ctx: call.Context(), types: types,
		sc: &scope{n: n, md: md, peer: ev.Peer, vars: rs.script.vars, caps: map[string]any{}, env: e.opts.Env},
	}
	if in.haveFirst {
		r.sc.req = in.first
	}
	return r.execute()
}

// claim takes one use of a rule; it fails when the rule has retired.
func claim(used *atomic.Int64, times int) (int64, bool) {
	if times <= 0 {
		return used.Add(1), true
	}
	for {
		u := used.Load()
		if u >= int64(times) {
			return 0, false
		}
		if used.CompareAndSwap(u, u+1) {
			return u + 1, true
		}
	}
}

// toStatus turns any error into a status error: context errors keep their
// meaning, other non-status errors become INTERNAL.
// statusOf returns err's status, and an OK status (never nil) for nil.
func statusOf(err error) *status.Status {
	if err == nil {
		return status.New(codes.OK, "")
	}
	return status.Convert(err)
}

func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return status.FromContextError(err).Err()
	}
	return status.Error(codes.Internal, err.Error())
}

// recorder keeps what passes through a call for the event, and lets the
// matcher put back a message it looked at.
type recorder struct {
	dynamic.Call
	pending []proto.Message
	// mu guards in: a rule that relays (bcctl proxy) receives in a
	// goroutine of the relay's, which may still be waiting for the caller
	// when the call has its answer.
	mu      sync.Mutex
	in      []proto.Message
	out     []proto.Message
	header  metadata.MD
	trailer metadata.MD
	// sidechannel is what a sidechannel step saw of the call's
	// sidechannel; nil when no step opened it.
	sidechannel *calls.Sidechannel
}

func (r *recorder) unread(m proto.Message) {
	r.pending = append([]proto.Message{m}, r.pending...)
}

func (r *recorder) Recv() (proto.Message, error) {
	if len(r.pending) > 0 {
		m := r.pending[0]
		r.pending = r.pending[1:]
		return m, nil
	}
	m, err := r.Call.Recv()
	if err == nil {
		r.mu.Lock()
		r.in = append(r.in, m)
		r.mu.Unlock()
	}
	return m, err
}

// received returns the requests received so far.
func (r *recorder) received() []proto.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.in)
}

func (r *recorder) Send(m proto.Message) error {
	if err := r.Call.Send(m); err != nil {
		return err
	}
	r.out = append(r.out, m)
	return nil
}

func (r *recorder) SetHeader(md metadata.MD) error {
	if err := r.Call.SetHeader(md); err != nil {
		return err
	}
	r.header = metadata.Join(r.header, md)
	return nil
}

func (r *recorder) SetTrailer(md metadata.MD) {
	r.Call.SetTrailer(md)
	r.trailer = metadata.Join(r.trailer, md)
}
