package answer_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/tui/answer"
	"github.com/bcctl/bcctl/internal/tui/internal/tuitest"
)

// env is a plain gRPC server on 127.0.0.1 serving the corpus, every call
// answered by a Responder, and a client connected to it.
type env struct {
	t   *testing.T
	r   *answer.Responder
	cc  *grpc.ClientConn
	src dynamic.Source
}

func newEnv(t *testing.T, opts answer.Options) *env {
	t.Helper()
	src := tuitest.Corpus(t)
	if opts.Resolver == nil {
		opts.Resolver = src.Types()
	}
	r := answer.NewResponder(opts)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	if _, err := dynamic.RegisterSource(context.Background(), srv, src, r); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = srv.Serve(lis)
	}()
	cc, err := grpc.NewClient("passthrough:///"+lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.Close()
		_ = cc.Close()
		srv.Stop()
		wg.Wait()
	})
	return &env{t: t, r: r, cc: cc, src: src}
}

// next waits for the Responder's next event.
func (e *env) next() tea.Msg {
	e.t.Helper()
	return run(e.t, e.r.Next())
}

// run runs a tea.Cmd as the program would, with a time limit.
func run(t *testing.T, cmd tea.Cmd) tea.Msg {
	t.Helper()
	ch := make(chan tea.Msg, 1)
	go func() { ch <- cmd() }()
	select {
	case m := <-ch:
		return m
	case <-time.After(30 * time.Second):
		t.Fatal("a tea.Cmd did not return within 30s")
		return nil
	}
}

// nextOf waits for the next event, which must be a T.
func nextOf[T tea.Msg](e *env) T {
	e.t.Helper()
	m := e.next()
	v, ok := m.(T)
	if !ok {
		var want T
		e.t.Fatalf("got event %T %+v, want a %T", m, m, want)
	}
	return v
}

// result is what a client's call got.
type result struct {
	responses []string
	status    *status.Status
}

// invoke calls method from the client in the background; the result comes
// on the returned channel.
func (e *env) invoke(ctx context.Context, method string, md metadata.MD, requests ...string) <-chan result {
	ch := make(chan result, 1)
	go func() {
		h := &handler{}
		in := strings.NewReader(strings.Join(requests, "\n"))
		err := dynamic.InvokeRPC(ctx, e.src, e.cc, method, md, h, dynamic.NewJSONRequestParser(in, e.src.Types()).Next)
		if err != nil {
			h.res.status = status.New(codes.Internal, "invoke: "+err.Error())
		}
		ch <- h.res
	}()
	return ch
}

func wait(t *testing.T, ch <-chan result) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("the client's call did not end within 30s")
		return result{}
	}
}

type handler struct{ res result }

func (h *handler) OnResolveMethod(protoreflect.MethodDescriptor) {}
func (h *handler) OnSendHeaders(metadata.MD)                     {}
func (h *handler) OnReceiveHeaders(metadata.MD)                  {}
func (h *handler) OnReceiveTrailers(st *status.Status, _ metadata.MD) {
	h.res.status = st
}
func (h *handler) OnReceiveResponse(m proto.Message) {
	h.res.responses = append(h.res.responses, jsonOf(m))
}

func jsonOf(m proto.Message) string {
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		return "!" + err.Error()
	}
	return strings.ReplaceAll(string(b), " ", "")
}

const vote = "gitaly.RefTransaction/VoteTransaction"

func TestReplyAfterAnInvalidOne(t *testing.T) {
	var mu sync.Mutex
	var observed []*calls.Event
	e := newEnv(t, answer.Options{Observer: calls.ObserverFunc(func(ev *calls.Event) {
		mu.Lock()
		observed = append(observed, ev)
		mu.Unlock()
	})})
	ctx, cancel := context.WithTimeout(tuitest.Context(t), 20*time.Second)
	defer cancel()
	done := e.invoke(ctx, vote, metadata.Pairs("x-request-id", "42"), `{"transaction_id": 42, "node": "gitaly-1"}`)

	arrived := nextOf[answer.ArrivedMsg](e)
	c := arrived.Call
	if got := dynamic.MethodName(c.Method); got != vote {
		t.Errorf("method = %s, want %s", got, vote)
	}
	if got := c.Metadata.Get("x-request-id"); len(got) != 1 || got[0] != "42" {
		t.Errorf("metadata x-request-id = %q, want [42]", got)
	}
	if c.Deadline.IsZero() {
		t.Error("the call's deadline is missing")
	}
	if got := jsonOf(nextOf[answer.ReceivedMsg](e).Msg); got != `{"transaction_id":"42","node":"gitaly-1"}` {
		t.Errorf("request = %s", got)
	}
	nextOf[answer.HalfClosedMsg](e)

	// A reply that does not fit the output type sends nothing.
	res := run(t, c.Reply(`{"state": "MAYBE"}`)).(answer.ResultMsg)
	var fe *dynamic.FieldError
	if !errors.As(res.Err, &fe) || fe.Path != "state" {
		t.Fatalf("invalid reply: err = %v, want a FieldError at state", res.Err)
	}
	res = run(t, c.Reply(`{"stat": "ABORT"}`)).(answer.ResultMsg)
	if res.Err == nil || !strings.Contains(res.Err.Error(), "stat") {
		t.Fatalf("unknown field: err = %v, want one naming the field", res.Err)
	}

	res = run(t, c.Reply(`{"state": "ABORT"}`)).(answer.ResultMsg)
	if res.Err != nil || res.Action != answer.ActionReply {
		t.Fatalf("reply: %+v", res)
	}
	if got := jsonOf(nextOf[answer.SentMsg](e).Msg); got != `{"state":"ABORT"}` {
		t.Errorf("sent = %s", got)
	}
	ended := nextOf[answer.EndedMsg](e)
	if ended.State != answer.Answered || ended.Status.Code() != codes.OK {
		t.Errorf("ended: state %v status %v, want answered OK", ended.State, ended.Status)
	}
	r := wait(t, done)
	if r.status.Code() != codes.OK || len(r.responses) != 1 || r.responses[0] != `{"state":"ABORT"}` {
		t.Errorf("client got %v %v, want OK {state:ABORT}", r.status, r.responses)
	}

	// Too late: the call is over.
	if res := run(t, c.Reply(`{}`)).(answer.ResultMsg); !errors.Is(res.Err, answer.ErrEnded) {
		t.Errorf("reply after the end: err = %v, want ErrEnded", res.Err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(observed) != 1 || observed[0].Method != vote || len(observed[0].Responses) != 1 || observed[0].Dir != calls.Reverse {
		t.Errorf("observed %+v, want the one reverse call with its reply", observed)
	}
}

func TestFailWithDetails(t *testing.T) {
	e := newEnv(t, answer.Options{})
	done := e.invoke(tuitest.Context(t), vote, nil, `{}`)
	c := nextOf[answer.ArrivedMsg](e).Call
	nextOf[answer.ReceivedMsg](e)
	nextOf[answer.HalfClosedMsg](e)

	tests := []struct {
		name, details, want string
		is                  error
	}{
		{"not JSON", `{"@type": `, "details", nil},
		{"unknown type", `{"@type": "type.googleapis.com/nope.Nope"}`, `details[0]: unknown type "type.googleapis.com/nope.Nope"`, answer.ErrUnknownDetail},
		{"no type", `{"reason": "x"}`, `details[0]: no "@type"`, nil},
		{"bad field", `[{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reasn": "x"}]`, "details[0]", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := run(t, c.Fail(codes.Aborted, "no", tt.details)).(answer.ResultMsg)
			if res.Err == nil || !strings.Contains(res.Err.Error(), tt.want) {
				t.Errorf("err = %v, want one mentioning %q", res.Err, tt.want)
			}
			if tt.is != nil && !errors.Is(res.Err, tt.is) {
				t.Errorf("err = %v, want it to wrap %v", res.Err, tt.is)
			}
		})
	}
	if res := run(t, c.Fail(codes.OK, "", "")).(answer.ResultMsg); res.Err == nil {
		t.Error("failing with OK was accepted")
	}
	res := run(t, c.Fail(codes.FailedPrecondition, "not today",
		`{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "FROZEN", "domain": "gitaly"}`)).(answer.ResultMsg)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	ended := nextOf[answer.EndedMsg](e)
	if ended.State != answer.Answered || ended.Status.Code() != codes.FailedPrecondition {
		t.Errorf("ended %v %v", ended.State, ended.Status)
	}
	r := wait(t, done)
	if r.status.Code() != codes.FailedPrecondition || r.status.Message() != "not today" {
		t.Fatalf("client got %v", r.status)
	}
	details := r.status.Details()
	if len(details) != 1 {
		t.Fatalf("details = %v, want one ErrorInfo", details)
	}
	if info, ok := details[0].(*errdetails.ErrorInfo); !ok || info.GetReason() != "FROZEN" {
		t.Errorf("detail = %v, want ErrorInfo FROZEN", details[0])
	}
}

func TestDelegateToTheScript(t *testing.T) {
	engine := tuitest.DownstreamEngine(t, `
backchannel:
  - name: stop-it
    match: {method: gitaly.RefTransaction/VoteTransaction, request: {node: gitaly-1}}
    headers: {x-by: script}
    reply: {state: STOP}
`, nil)
	e := newEnv(t, answer.Options{Script: engine})
	if !e.r.HasScript() {
		t.Fatal("HasScript = false with a script")
	}
	done := e.invoke(tuitest.Context(t), vote, nil, `{"node": "gitaly-1"}`)
	c := nextOf[answer.ArrivedMsg](e).Call
	nextOf[answer.ReceivedMsg](e)
	// The match comes with the first request of a single-request method;
	// the half-close may come before or after it.
	var match answer.MatchMsg
	for got := false; !got; {
		switch m := e.next().(type) {
		case answer.MatchMsg:
			match, got = m, true
		case answer.HalfClosedMsg:
		default:
			t.Fatalf("unexpected event %T", m)
		}
	}
	if !strings.Contains(match.Rule, "stop-it") {
		t.Errorf("match = %+v, want rule stop-it", match)
	}
	if res := run(t, c.Delegate()).(answer.ResultMsg); res.Err != nil {
		t.Fatal(res.Err)
	}
	var ended answer.EndedMsg
	seenSent := false
	for ended.ID == 0 {
		switch m := e.next().(type) {
		case answer.DelegatedMsg, answer.HalfClosedMsg:
		case answer.SentMsg:
			seenSent = m.By == answer.Script && jsonOf(m.Msg) == `{"state":"STOP"}`
		case answer.EndedMsg:
			ended = m
		default:
			t.Fatalf("unexpected event %T", m)
		}
	}
	if !seenSent || ended.State != answer.Scripted || ended.Status.Code() != codes.OK {
		t.Errorf("sent by script %v, ended %v %v", seenSent, ended.State, ended.Status)
	}
	if got := ended.Header.Get("x-by"); len(got) != 1 || got[0] != "script" {
		t.Errorf("header = %v, want x-by: script", ended.Header)
	}
	r := wait(t, done)
	if r.status.Code() != codes.OK || len(r.responses) != 1 || r.responses[0] != `{"state":"STOP"}` {
		t.Errorf("client got %v %v", r.status, r.responses)
	}
}

func TestNoScriptToDelegateTo(t *testing.T) {
	e := newEnv(t, answer.Options{})
	done := e.invoke(tuitest.Context(t), vote, nil, `{}`)
	c := nextOf[answer.ArrivedMsg](e).Call
	if res := run(t, c.Delegate()).(answer.ResultMsg); !errors.Is(res.Err, answer.ErrNoScript) {
		t.Errorf("delegate without a script: %v, want ErrNoScript", res.Err)
	}
	if res := run(t, c.End()).(answer.ResultMsg); !errors.Is(res.Err, answer.ErrNeedsReply) {
		t.Errorf("end before the reply: %v, want ErrNeedsReply", res.Err)
	}
	run(t, c.Reply(`{}`))
	if r := wait(t, done); r.status.Code() != codes.OK {
		t.Errorf("client got %v", r.status)
	}
}

func TestExpires(t *testing.T) {
	e := newEnv(t, answer.Options{})
	ctx, cancel := context.WithTimeout(tuitest.Context(t), 300*time.Millisecond)
	defer cancel()
	done := e.invoke(ctx, vote, nil, `{}`)
	c := nextOf[answer.ArrivedMsg](e).Call
	for {
		if ended, ok := e.next().(answer.EndedMsg); ok {
			if ended.State != answer.Expired || ended.Status.Code() != codes.DeadlineExceeded {
				t.Errorf("ended %v %v, want expired DEADLINE_EXCEEDED", ended.State, ended.Status)
			}
			break
		}
	}
	if res := run(t, c.Reply(`{}`)).(answer.ResultMsg); !errors.Is(res.Err, answer.ErrEnded) {
		t.Errorf("reply after expiry: %v, want ErrEnded", res.Err)
	}
	if r := wait(t, done); r.status.Code() != codes.DeadlineExceeded {
		t.Errorf("client got %v", r.status)
	}
}

func TestCancelled(t *testing.T) {
	e := newEnv(t, answer.Options{})
	ctx, cancel := context.WithCancel(tuitest.Context(t))
	done := e.invoke(ctx, vote, nil, `{}`)
	nextOf[answer.ArrivedMsg](e)
	cancel()
	for {
		if ended, ok := e.next().(answer.EndedMsg); ok {
			if ended.State != answer.Cancelled {
				t.Errorf("ended %v, want cancelled", ended.State)
			}
			break
		}
	}
	wait(t, done)
}

func TestBidiStreamByHand(t *testing.T) {
	e := newEnv(t, answer.Options{})
	done := e.invoke(tuitest.Context(t), "acme.Users/Chat", nil, `{"text": "hi"}`, `{"text": "there"}`)
	c := nextOf[answer.ArrivedMsg](e).Call
	if !c.ServerStreams() || !c.ClientStreams() {
		t.Fatal("Chat should stream both ways")
	}
	var got []string
	for half := false; !half; {
		switch m := e.next().(type) {
		case answer.ReceivedMsg:
			got = append(got, jsonOf(m.Msg))
		case answer.HalfClosedMsg:
			half = true
		default:
			t.Fatalf("unexpected %T", m)
		}
	}
	if strings.Join(got, " ") != `{"text":"hi"} {"text":"there"}` {
		t.Errorf("received %v", got)
	}
	for _, text := range []string{"one", "two"} {
		if res := run(t, c.Reply(`{"text": "`+text+`"}`)).(answer.ResultMsg); res.Err != nil {
			t.Fatal(res.Err)
		}
		if m := nextOf[answer.SentMsg](e); m.By != answer.Person {
			t.Errorf("sent by %v", m.By)
		}
	}
	if res := run(t, c.End()).(answer.ResultMsg); res.Err != nil {
		t.Fatal(res.Err)
	}
	if ended := nextOf[answer.EndedMsg](e); ended.State != answer.Answered || ended.Status.Code() != codes.OK {
		t.Errorf("ended %v %v", ended.State, ended.Status)
	}
	r := wait(t, done)
	if r.status.Code() != codes.OK || strings.Join(r.responses, " ") != `{"text":"one"} {"text":"two"}` {
		t.Errorf("client got %v %v", r.status, r.responses)
	}
	if res := run(t, c.Delegate()).(answer.ResultMsg); !errors.Is(res.Err, answer.ErrEnded) {
		t.Errorf("delegate after the end: %v", res.Err)
	}
}

func TestDelegateAClientStreamMidway(t *testing.T) {
	engine := tuitest.DownstreamEngine(t, `
backchannel:
  - name: import
    match: {method: acme.Users/Import}
    end:
      - reply: {imported: 2, skipped_ids: ["${reqs.0.id}", "${req.id}"]}
`, nil)
	e := newEnv(t, answer.Options{Script: engine})
	// The client sends one user, then waits until the script has taken
	// the call over before it sends the second and half-closes.
	gate := make(chan struct{})
	sent := 0
	supply := func(msg proto.Message) error {
		sent++
		switch sent {
		case 1:
			return dynamic.ParseJSON([]byte(`{"id": "a"}`), msg, nil)
		case 2:
			<-gate
			return dynamic.ParseJSON([]byte(`{"id": "b"}`), msg, nil)
		}
		return io.EOF
	}
	done := make(chan result, 1)
	go func() {
		h := &handler{}
		if err := dynamic.InvokeRPC(tuitest.Context(t), e.src, e.cc, "acme.Users/Import", nil, h, supply); err != nil {
			h.res.status = status.New(codes.Internal, err.Error())
		}
		done <- h.res
	}()
	c := nextOf[answer.ArrivedMsg](e).Call
	// A client stream is matched before its first message.
	if m := nextOf[answer.MatchMsg](e); !strings.Contains(m.Rule, "import") {
		t.Errorf("match = %+v", m)
	}
	if got := jsonOf(nextOf[answer.ReceivedMsg](e).Msg); got != `{"id":"a"}` {
		t.Errorf("first message %s", got)
	}
	if res := run(t, c.Delegate()).(answer.ResultMsg); res.Err != nil {
		t.Fatal(res.Err)
	}
	nextOf[answer.DelegatedMsg](e)
	close(gate)
	r := wait(t, done)
	if r.status.Code() != codes.OK || len(r.responses) != 1 || r.responses[0] != `{"imported":2,"skipped_ids":["a","b"]}` {
		t.Errorf("client got %v %v, want the script to see both users", r.status, r.responses)
	}
}

func TestCloseAbandonsPendingCalls(t *testing.T) {
	e := newEnv(t, answer.Options{})
	done := e.invoke(tuitest.Context(t), vote, nil, `{}`)
	nextOf[answer.ArrivedMsg](e)
	e.r.Close()
	for {
		m := e.next()
		if ended, ok := m.(answer.EndedMsg); ok {
			if ended.State != answer.Abandoned {
				t.Errorf("ended %v, want abandoned", ended.State)
			}
			break
		}
	}
	if r := wait(t, done); r.status.Code() != codes.Unavailable {
		t.Errorf("client got %v, want UNAVAILABLE", r.status)
	}
	if _, ok := e.next().(answer.ClosedMsg); !ok {
		t.Error("Next after Close and the last event should be ClosedMsg")
	}
	// Later calls get UNAVAILABLE at once (no script to answer them).
	if r := wait(t, e.invoke(tuitest.Context(t), vote, nil, `{}`)); r.status.Code() != codes.Unavailable {
		t.Errorf("call after Close: %v", r.status)
	}
}

// TestConnectionLost: pending calls end Lost with the cause, the program
// is told, and a call whose context ends while the connection is gone is
// lost too, not cancelled.
func TestConnectionLost(t *testing.T) {
	var gone atomic.Bool
	e := newEnv(t, answer.Options{Gone: gone.Load})
	done := e.invoke(tuitest.Context(t), vote, nil, `{}`)
	nextOf[answer.ArrivedMsg](e)
	e.r.ConnectionLost(errors.New("the server at 127.0.0.1:9000 closed the connection"))
	var ended answer.EndedMsg
	var lost bool
	for ended.ID == 0 || !lost {
		switch m := e.next().(type) {
		case answer.EndedMsg:
			ended = m
		case answer.LostMsg:
			lost = true
		}
	}
	if ended.State != answer.Lost || ended.Status.Code() != codes.Unavailable ||
		ended.Status.Message() != "the server at 127.0.0.1:9000 closed the connection before this call was answered" {
		t.Errorf("ended %v %v, want lost, UNAVAILABLE with the cause", ended.State, ended.Status)
	}
	if r := wait(t, done); r.status.Code() != codes.Unavailable {
		t.Errorf("client got %v, want UNAVAILABLE", r.status)
	}

	// The connection is gone when the caller's context ends: lost.
	e = newEnv(t, answer.Options{Gone: gone.Load})
	ctx, cancel := context.WithCancel(tuitest.Context(t))
	done = e.invoke(ctx, vote, nil, `{}`)
	nextOf[answer.ArrivedMsg](e)
	gone.Store(true)
	cancel()
	for {
		if ended, ok := e.next().(answer.EndedMsg); ok {
			if ended.State != answer.Lost {
				t.Errorf("ended %v, want lost", ended.State)
			}
			break
		}
	}
	wait(t, done)
}
