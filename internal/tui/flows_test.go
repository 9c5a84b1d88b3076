package tui

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/exp/teatest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/tui/answer"
	"github.com/bcctl/bcctl/internal/tui/forward"
	"github.com/bcctl/bcctl/internal/tui/internal/tuitest"
)

// flow is the Gitaly-like set-up of the teatest flows: an upstream on
// 127.0.0.1 whose UserCreateBranch asks the caller to vote on its backchannel,
// and a client whose backchannel is answered by the TUI.
type flow struct {
	t        *testing.T
	upstream *tuitest.Upstream
	src      dynamic.Source
	cc       *grpc.ClientConn
	r        *answer.Responder
	tm       *teatest.TestModel
}

func startFlow(t *testing.T) *flow {
	t.Helper()
	f := &flow{t: t, upstream: tuitest.StartUpstream(t, "", nil), src: tuitest.Corpus(t)}
	f.r = answer.NewResponder(answer.Options{Resolver: f.src.Types()})
	f.cc = tuitest.Dial(t, f.upstream.Addr, f.r)
	m := NewAnswerModel(AnswerConfig{
		Responder: f.r, Resolver: f.src.Types(), Title: "connected to " + f.upstream.Addr,
		Forward: &forward.Config{Source: f.src, Invoker: forward.ConnInvoker(f.cc), Target: f.upstream.Addr},
	})
	f.tm = teatest.NewTestModel(t, m, teatest.WithInitialTermSize(120, 40))
	t.Cleanup(func() {
		_ = f.tm.Quit()
		f.tm.WaitFinished(t, teatest.WithFinalTimeout(10*time.Second))
		f.r.Close()
	})
	return f
}

// waitFor waits until the screen shows every one of texts.
func (f *flow) waitFor(texts ...string) {
	f.t.Helper()
	teatest.WaitFor(f.t, f.tm.Output(), func(b []byte) bool {
		for _, s := range texts {
			if !bytes.Contains(b, []byte(s)) {
				return false
			}
		}
		return true
	}, teatest.WithDuration(20*time.Second), teatest.WithCheckInterval(10*time.Millisecond))
}

func (f *flow) keys(keys ...tea.KeyMsg) {
	for _, k := range keys {
		f.tm.Send(k)
	}
}

var (
	keyEnter = tea.KeyMsg{Type: tea.KeyEnter}
	keyTab   = tea.KeyMsg{Type: tea.KeyTab}
	keyEsc   = tea.KeyMsg{Type: tea.KeyEsc}
	keySend  = tea.KeyMsg{Type: tea.KeyCtrlS}
	keyBack  = tea.KeyMsg{Type: tea.KeyBackspace}
	keyF2    = tea.KeyMsg{Type: tea.KeyF2}
)

func runes(s string) tea.KeyMsg { return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(s)} }

// forwardResult is what the client's own forward call got.
type forwardResult struct {
	responses []string
	status    *status.Status
}

// createBranch makes the forward call that makes the upstream call back,
// in the background.
func (f *flow) createBranch(branch string) <-chan forwardResult {
	ch := make(chan forwardResult, 1)
	go func() {
		h := &resultHandler{}
		req := `{"branch_name": "` + base64.StdEncoding.EncodeToString([]byte(branch)) + `", "start_point": "YWJjMTIz"}`
		err := dynamic.InvokeRPC(tuitest.Context(f.t), f.src, f.cc, "gitaly.OperationService/UserCreateBranch",
			metadata.Pairs("gitaly-reference-transaction", "eyJpZCI6NDIsIm5vZGUiOiJnaXRhbHktMSIsInByaW1hcnkiOnRydWV9"), h, dynamic.NewJSONRequestParser(strings.NewReader(req), f.src.Types()).Next)
		if err != nil {
			h.res.status = status.New(codes.Internal, err.Error())
		}
		ch <- h.res
	}()
	return ch
}

func (f *flow) result(ch <-chan forwardResult) forwardResult {
	f.t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(30 * time.Second):
		f.t.Fatal("the forward call did not end within 30s")
		return forwardResult{}
	}
}

type resultHandler struct{ res forwardResult }

func (h *resultHandler) OnResolveMethod(protoreflect.MethodDescriptor) {}
func (h *resultHandler) OnSendHeaders(metadata.MD)                     {}
func (h *resultHandler) OnReceiveHeaders(metadata.MD)                  {}
func (h *resultHandler) OnReceiveResponse(m proto.Message) {
	b, _ := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	h.res.responses = append(h.res.responses, strings.ReplaceAll(string(b), " ", ""))
}
func (h *resultHandler) OnReceiveTrailers(st *status.Status, _ metadata.MD) { h.res.status = st }

// TestFlowAnswerWithReply: the upstream asks for a vote while the client's
// UserCreateBranch is running; the person first sends a reply that is not
// JSON (the error shows and nothing is sent), then fixes it and sends
// COMMIT, and the branch is created.
func TestFlowAnswerWithReply(t *testing.T) {
	f := startFlow(t)
	done := f.createBranch("feature/tui")
	f.waitFor("gitaly.RefTransaction/VoteTransaction", "x-request-id: 42", `"node": "gitaly-1"`, "left")

	f.keys(keyEnter)   // edit the reply (the template says COMMIT)
	f.keys(runes("x")) // now it is not JSON
	f.keys(keySend)    // refused: nothing is sent
	f.waitFor("✗")
	f.keys(keyBack) // the x goes again
	f.keys(keySend)
	// The call's outcome takes the editor's place, and the queue row ended
	// OK.
	f.waitFor("Outcome of call #1", "Reply sent by you", "OK││")

	r := f.result(done)
	if r.status.Code() != codes.OK || len(r.responses) != 1 || !strings.Contains(r.responses[0], `"name":"ZmVhdHVyZS90dWk="`) {
		t.Fatalf("UserCreateBranch got %v %v, want OK with the branch", r.status, r.responses)
	}
	_ = f.tm.Quit()
	final := f.tm.FinalModel(t, teatest.WithFinalTimeout(10*time.Second)).(AnswerModel)
	cv := final.calls[1]
	if cv == nil || cv.state != answer.Answered || len(cv.sent) != 1 || final.Pending() != 0 {
		t.Errorf("call #1 in the final model: %+v, pending %d; want answered with one reply", cv, final.Pending())
	}
}

// TestFlowAnswerWithError: the person answers the vote with ABORTED and a
// message; the upstream refuses to create the branch and says why.
func TestFlowAnswerWithError(t *testing.T) {
	f := startFlow(t)
	done := f.createBranch("feature/no")
	f.waitFor("VoteTransaction", "left")

	f.keys(runes("e")) // the error form, ABORTED chosen
	f.waitFor("Answer with an error", "ABORTED")
	f.keys(tea.KeyMsg{Type: tea.KeyUp}, tea.KeyMsg{Type: tea.KeyDown}) // move and back: still ABORTED
	f.keys(keyTab)
	for _, r := range "no quorum" {
		f.keys(runes(string(r)))
	}
	f.keys(keySend)
	f.waitFor("Outcome of call #1", "ABORTED: no quorum")

	r := f.result(done)
	if r.status.Code() != codes.Aborted || !strings.Contains(r.status.Message(), "no quorum") {
		t.Fatalf("UserCreateBranch got %v, want ABORTED naming the vote's message", r.status)
	}
}

// TestFlowForwardCall: on the forward screen the person filters the
// methods, picks acme.Users/List, sends the template, and the three
// streamed users appear with the status.
func TestFlowForwardCall(t *testing.T) {
	f := startFlow(t)
	f.keys(keyF2)
	f.waitFor("type to filter methods", "gitaly.OperationService/UserCreateBranch")
	for _, r := range "userslist" {
		f.keys(runes(string(r)))
	}
	f.keys(keyEnter)
	f.waitFor("acme.Users/List", "server stream", `"limit"`)
	f.keys(keySend)
	// The view follows the stream to its end (frames in between may be
	// skipped by the renderer, so the earlier users are checked below).
	f.waitFor(`"name": "linus"`, "Response 3", "Status (", "OK", "Trailers")

	_ = f.tm.Quit()
	final := f.tm.FinalModel(t, teatest.WithFinalTimeout(10*time.Second)).(AnswerModel)
	if got := dynamic.MethodName(final.fwd.Method()); got != "acme.Users/List" {
		t.Errorf("picked %s, want acme.Users/List", got)
	}
	if final.fwd.Running() {
		t.Error("the call is still running after its status arrived")
	}
	content := final.fwd.Response().Content()
	for _, want := range []string{`"name": "ada"`, `"name": "grace"`, `"name": "linus"`, "Response headers", "OK"} {
		if !strings.Contains(content, want) {
			t.Errorf("the response view lacks %q:\n%s", want, content)
		}
	}
}

// TestFlowServerGone (issue 15, item 14): the upstream crashes while its
// vote waits in the queue. The call is marked lost with that cause (not
// "cancelled", not "the TUI was closed"), the journal is told UNAVAILABLE,
// the title says why, and the queue stays on the screen until the person
// leaves.
func TestFlowServerGone(t *testing.T) {
	upstream := tuitest.StartUpstream(t, "", nil)
	src := tuitest.Corpus(t)
	var mu sync.Mutex
	var seen []*calls.Event
	obs := calls.ObserverFunc(func(ev *calls.Event) {
		mu.Lock()
		seen = append(seen, ev)
		mu.Unlock()
	})
	var gone func() bool
	r := answer.NewResponder(answer.Options{Resolver: src.Types(), Observer: obs, Gone: func() bool { return gone() }})
	cc, closed := tuitest.DialWatched(t, upstream.Addr, r)
	gone = closed
	f := &flow{t: t, upstream: upstream, src: src, cc: cc, r: r}
	f.tm = teatest.NewTestModel(t, NewAnswerModel(AnswerConfig{Responder: r, Resolver: src.Types(), Title: "connected to " + upstream.Addr}),
		teatest.WithInitialTermSize(120, 40))
	t.Cleanup(func() {
		_ = f.tm.Quit()
		f.tm.WaitFinished(t, teatest.WithFinalTimeout(10*time.Second))
		r.Close()
	})
	done := f.createBranch("feature/crash")
	f.waitFor("VoteTransaction", "left")

	upstream.Crash()
	f.waitFor("lost││", "Outcome of call #1 · lost")
	if res := f.result(done); res.status.Code() != codes.Unavailable {
		t.Errorf("the forward call got %v, want UNAVAILABLE", res.status)
	}
	cause := errors.New("the server at " + upstream.Addr + " closed the connection")
	r.ConnectionLost(cause)
	f.waitFor("closed the connection · q leaves")

	_ = f.tm.Quit()
	final := f.tm.FinalModel(t, teatest.WithFinalTimeout(10*time.Second)).(AnswerModel)
	if cv := final.calls[1]; cv == nil || cv.state != answer.Lost || final.queue.Len() != 1 {
		t.Errorf("the final model: call %+v, %d in the queue; want call #1 lost and still listed", cv, final.queue.Len())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 || seen[0].Status.Code() != codes.Unavailable || !strings.Contains(seen[0].Status.Message(), "connection") {
		t.Errorf("journaled %+v, want the vote UNAVAILABLE because the connection closed", seen)
	}
}
