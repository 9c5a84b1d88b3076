package tui

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/golden"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/tui/answer"
	"github.com/bcctl/bcctl/internal/tui/forward"
	"github.com/bcctl/bcctl/internal/tui/internal/tuitest"
)

var (
	keyCtrlL = tea.KeyMsg{Type: tea.KeyCtrlL}
	keyCtrlC = tea.KeyMsg{Type: tea.KeyCtrlC}
)

// typed is one key per rune of s.
func typed(s string) []tea.Msg {
	var out []tea.Msg
	for _, r := range s {
		out = append(out, runes(string(r)))
	}
	return out
}

func seq(parts ...[]tea.Msg) []tea.Msg {
	var out []tea.Msg
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// reverseCallDone is the serve program after a reverse call of
// VoteTransaction into peer 1 has ended.
func reverseCallDone(t *testing.T) []tea.Msg {
	vote := tuitest.Method(t, "gitaly.RefTransaction/VoteTransaction")
	return seq([]tea.Msg{runes("c")}, typed("vote"), []tea.Msg{keyEnter, picked(vote), keySend,
		forward.StartedMsg{Run: 1},
		forward.HeaderMsg{Run: 1, MD: metadata.MD{}},
		forward.ResponseMsg{Run: 1, Msg: message(t, vote.Output(), `{"state": "ABORT"}`)},
		forward.TrailerMsg{Run: 1, Status: status.New(codes.OK, ""), Elapsed: 2 * time.Millisecond},
	})
}

// TestPickerNeverSends (issue 15, item 1): in the method picker, keys only
// pick. ctrl+s there used to send the request hidden behind the picker (on
// serve's screen, a reverse call into a live peer). The picker opens with
// an empty filter and the last method highlighted (item 3), and the help
// bar shows the picker's keys.
func TestPickerNeverSends(t *testing.T) {
	m := newServeGoldenModel(t, goldenPeers, goldenJournal)
	m, s := screen(t, m, 120, 30, append(reverseCallDone(t), keyCtrlL)...)
	golden.RequireEqual(t, []byte(s))
	if !strings.Contains(s, "› type to filter methods") || !strings.Contains(s, "▸ gitaly.RefTransaction/VoteTransaction") {
		t.Errorf("the picker should open with an empty filter and the last method highlighted:\n%s", s)
	}
	var cmd tea.Cmd
	for _, k := range append(typed("zzz"), keySend, tea.KeyMsg{Type: tea.KeyCtrlG}) {
		m, cmd = m.Update(k)
		if cmd != nil {
			if _, ok := cmd().(forward.StartedMsg); ok {
				t.Fatalf("%v in the picker started a call", k)
			}
		}
	}
	if m.(ServeModel).fwd.Running() {
		t.Fatal("ctrl+s in the picker sent the previous request")
	}
	if f := m.(ServeModel).fwd.Picker().Filter(); f != "zzz" {
		t.Errorf("filter after typing zzz is %q, want zzz (a new search)", f)
	}
	m, _ = m.Update(keyEsc) // back to the request, as it was
	if got := m.(ServeModel).fwd.FocusedPart(); got != forward.FocusEditor {
		t.Errorf("esc from the picker focused %v, want the editor", got)
	}
}

// TestErrorFormEscGoesBack (item 2): esc from the error form returns to
// the pane it was opened from; from the queue, the next letter acts on the
// queue instead of being typed into the reply.
func TestErrorFormEscGoesBack(t *testing.T) {
	events, _ := goldenCalls(t)
	m := newAnswerModel(t, answer.Options{}, true)
	model, _ := screen(t, m, 120, 32, append(events, runes("e"))...)
	model = escFromForm(t, model)
	am := model.(AnswerModel)
	if am.pane != paneQueue || am.errOpen {
		t.Fatalf("after e, esc: pane %d (error form open %v), want the queue", am.pane, am.errOpen)
	}
	before := am.editor.Value()
	model, _ = model.Update(runes("j")) // the queue's next call
	am = model.(AnswerModel)
	if am.editor.Value() == before+"j" || !strings.Contains(am.editor.Value(), "COMMIT") {
		t.Errorf("j was typed into the reply: %q", am.editor.Value())
	}
	if it, _ := am.queue.Selected(); it.ID != 2 {
		t.Errorf("j selected call #%d, want #2", it.ID)
	}
	// From the editor, esc goes back to the editor.
	model, _ = screen(t, newAnswerModel(t, answer.Options{}, true), 120, 32, append(events, keyEnter, tea.KeyMsg{Type: tea.KeyCtrlX})...)
	model = escFromForm(t, model)
	if am := model.(AnswerModel); am.pane != paneEditor || am.errOpen {
		t.Errorf("after enter, ctrl+x, esc: pane %d, want the editor", am.pane)
	}
}

// escFromForm presses esc in the error form and delivers the form's
// answer.
func escFromForm(t *testing.T, m tea.Model) tea.Model {
	t.Helper()
	m, cmd := m.Update(keyEsc)
	if cmd == nil {
		t.Fatal("esc in the error form did nothing")
	}
	m, _ = m.Update(cmd())
	return m
}

// blockingInvoker blocks every call until its context ends, and says when
// a call has started.
type blockingInvoker struct{ started chan struct{} }

func (b blockingInvoker) Invoke(ctx context.Context, md protoreflect.MethodDescriptor, _ metadata.MD,
	h dynamic.InvocationEventHandler, requests dynamic.RequestSupplier) error {
	_ = requests(dynamicpb.NewMessage(md.Input()))
	b.started <- struct{}{}
	<-ctx.Done()
	h.OnReceiveTrailers(status.FromContextError(ctx.Err()), nil)
	return nil
}

// TestQuitAsksAboutCallsInFlight (item 4): q asks first when reverse calls
// wait or forward calls are in flight, and says what quitting does to
// them; any other key cancels the question; q twice quits.
func TestQuitAsksAboutCallsInFlight(t *testing.T) {
	events, _ := goldenCalls(t)
	getUser := tuitest.Method(t, "acme.Users/Get")
	var m tea.Model = newAnswerModel(t, answer.Options{}, true)
	m, _ = screen(t, m, 120, 32, seq(events, []tea.Msg{keyF2}, typed("users/get"), []tea.Msg{keyEnter, picked(getUser), keySend, forward.StartedMsg{Run: 1}, keyEsc})...)
	m, s := screen(t, m, 120, 32, runes("q"))
	golden.RequireEqual(t, []byte(s))
	if !strings.Contains(s, "press q again to quit (3 waiting calls get UNAVAILABLE, 1 forward call in flight is cancelled)") {
		t.Fatalf("no question after q:\n%s", s)
	}
	m, _ = m.Update(runes("j"))
	if s := ansi.Strip(m.View()); strings.Contains(s, "q again") {
		t.Errorf("another key should cancel the question:\n%s", s)
	}
	m, cmd := m.Update(runes("q"))
	if cmd != nil {
		t.Fatal("the first q quit")
	}
	_, cmd = m.Update(runes("q"))
	if cmd == nil {
		t.Fatal("the second q did not quit")
	}
	if _, ok := cmd().(tea.QuitMsg); !ok {
		t.Error("the second q did not quit")
	}
	// Nothing in flight: q quits at once.
	_, cmd = newAnswerModel(t, answer.Options{}, true).Update(runes("q"))
	if cmd == nil {
		t.Error("q with nothing in flight did not quit")
	}
}

// screenBuffer is the program's output, read by the test while the
// program writes it.
type screenBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newScreenBuffer() *screenBuffer { return &screenBuffer{changed: make(chan struct{}, 1)} }

func (b *screenBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	select {
	case b.changed <- struct{}{}:
	default:
	}
	return n, err
}

// waitFor waits until the output holds text.
func (b *screenBuffer) waitFor(t *testing.T, text string) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		b.mu.Lock()
		found := bytes.Contains(b.buf.Bytes(), []byte(text))
		b.mu.Unlock()
		if found {
			return
		}
		select {
		case <-b.changed:
		case <-timeout:
			t.Fatalf("the screen did not show %q within 20s", text)
		}
	}
}

// TestCtrlCJournalsTheCallInFlight (item 4): ctrl+c quits at once, and a
// forward call in flight is cancelled and reported (journaled) with what
// happened before RunAnswer returns.
func TestCtrlCJournalsTheCallInFlight(t *testing.T) {
	src := tuitest.Corpus(t)
	var mu sync.Mutex
	var seen []*calls.Event
	obs := calls.ObserverFunc(func(ev *calls.Event) {
		mu.Lock()
		seen = append(seen, ev)
		mu.Unlock()
	})
	inv := blockingInvoker{started: make(chan struct{}, 1)}
	r := answer.NewResponder(answer.Options{})
	cfg := AnswerConfig{Responder: r, Forward: &forward.Config{
		Source: src, Invoker: forward.Observed(inv, obs, calls.Forward, calls.Peer{Addr: "127.0.0.1:9000"}),
	}}
	in, keys := io.Pipe()
	out := newScreenBuffer()
	done := make(chan error, 1)
	go func() { done <- RunAnswer(tuitest.Context(t), cfg, in, out) }()
	t.Cleanup(func() { _ = keys.Close() })

	write := func(s string) {
		if _, err := keys.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	write("2") // the forward screen
	out.waitFor(t, "acme.Users/Get")
	write("users/get")
	out.waitFor(t, "users/get")
	write("\r") // pick
	out.waitFor(t, "acme.Users/Get (unary")
	write("\x13") // ctrl+s
	recv(t, inv.started)
	write("\x03") // ctrl+c
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("RunAnswer: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("RunAnswer did not return within 20s of ctrl+c")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 || seen[0].Method != "acme.Users/Get" || seen[0].Status.Code() != codes.Canceled {
		t.Fatalf("reported %d calls (%+v), want acme.Users/Get CANCELLED", len(seen), seen)
	}
}
