package forward

import (
	"errors"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"google.golang.org/grpc/codes"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/tui/editor"
	"github.com/bcctl/bcctl/internal/tui/history"
	"github.com/bcctl/bcctl/internal/tui/internal/tuitest"
)

// prog runs a pane as a program would: Cmds run in goroutines and their
// messages come back to Update one at a time.
type prog struct {
	t    *testing.T
	m    Model
	msgs chan tea.Msg
}

func newProg(t *testing.T, m Model) *prog { return &prog{t: t, m: m, msgs: make(chan tea.Msg, 64)} }

func (p *prog) run(cmd tea.Cmd) {
	if cmd == nil {
		return
	}
	go func() {
		msg := cmd()
		if batch, ok := msg.(tea.BatchMsg); ok {
			for _, c := range batch {
				p.run(c)
			}
			return
		}
		if msg != nil {
			p.msgs <- msg
		}
	}()
}

// do applies msg (a key, say) and runs what follows from it.
func (p *prog) do(msg tea.Msg) {
	var cmd tea.Cmd
	p.m, cmd = p.m.Update(msg)
	p.run(cmd)
}

// until handles messages until cond holds.
func (p *prog) until(what string, cond func(m Model) bool) {
	p.t.Helper()
	timeout := time.After(20 * time.Second)
	for !cond(p.m) {
		select {
		case msg := <-p.msgs:
			p.do(msg)
		case <-timeout:
			p.t.Fatalf("%s: not within 20s; the response view shows:\n%s", what, p.m.Response().Content())
		}
	}
}

func shows(texts ...string) func(Model) bool {
	return func(m Model) bool {
		c := m.Response().Content()
		for _, s := range texts {
			if !strings.Contains(c, s) {
				return false
			}
		}
		return true
	}
}

var (
	keySend    = tea.KeyMsg{Type: tea.KeyCtrlS}
	keyEndSend = tea.KeyMsg{Type: tea.KeyCtrlO}
	keyHistory = tea.KeyMsg{Type: tea.KeyCtrlR}
	keyEnter   = tea.KeyMsg{Type: tea.KeyEnter}
	keyDown    = tea.KeyMsg{Type: tea.KeyDown}
)

// TestBidiMessageByMessage (issue 15, item 12): a bidi call stays open;
// each ctrl+s sends the editor's message and its reply shows before the
// next is written; ctrl+o ends sending and the call ends OK.
func TestBidiMessageByMessage(t *testing.T) {
	m, events, mu := pane(t)
	p := newProg(t, m)
	p.run(p.m.Pick(tuitest.Method(t, "acme.Users/Chat")))
	p.m.SetRequest(`{"text": "one"}`)
	p.do(keySend)
	p.until("the reply to one", shows("Sent 1", "echo one"))
	if !p.m.calls[1].sending || !strings.Contains(p.m.View(), "sending, 1 sent") {
		t.Fatalf("the stream should stay open after the first message:\n%s", p.m.View())
	}
	p.m.SetRequest(`{"text": "two"}`)
	p.do(keySend)
	p.until("the reply to two", shows("Sent 2", "echo two", "Response 2"))
	if n := len(p.m.calls); n != 1 {
		t.Fatalf("the second message made a new call: %d calls", n)
	}
	p.do(keyEndSend)
	p.until("the end of the call", shows("Status (", "OK"))
	content := p.m.Response().Content()
	if strings.Index(content, "echo one") > strings.Index(content, "Sent 2") {
		t.Errorf("the timeline is out of order:\n%s", content)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(*events) != 1 || len((*events)[0].Requests) != 2 || len((*events)[0].Responses) != 2 {
		t.Errorf("observed %d calls, want the chat with 2 messages each way", len(*events))
	}
}

// TestClientStreamHalfClose (item 12): a client stream sends what the
// editor holds, more on each ctrl+s, and the server answers once ctrl+o
// half-closes.
func TestClientStreamHalfClose(t *testing.T) {
	m, _, _ := pane(t)
	p := newProg(t, m)
	p.run(p.m.Pick(tuitest.Method(t, "acme.Users/Import")))
	p.m.SetRequest(`{"id": "a"} {"id": "b"}`)
	p.do(keySend)
	p.until("two sent", shows("Sent 1", "Sent 2"))
	p.m.SetRequest(`{"id": "c"}`)
	p.do(keySend)
	p.until("three sent", shows("Sent 3"))
	if p.m.calls[1].status != nil {
		t.Fatal("the call ended before the stream was half-closed")
	}
	p.do(keyEndSend)
	p.until("the summary", shows(`"skipped_ids": [`, `"a"`, `"c"`, "OK"))
}

// TestDeadline (item 13): the deadline field bounds the call.
func TestDeadline(t *testing.T) {
	m, events, mu := pane(t)
	p := newProg(t, m)
	p.run(p.m.Pick(tuitest.Method(t, "acme.Users/Update")))
	p.m.SetTimeout(50 * time.Millisecond)
	p.do(keySend)
	p.until("the deadline", shows("DEADLINE_EXCEEDED"))
	mu.Lock()
	defer mu.Unlock()
	if len(*events) != 1 || (*events)[0].Status.Code() != codes.DeadlineExceeded {
		t.Errorf("observed %+v", *events)
	}
	if _, err := ParseTimeout("soon"); err == nil || !strings.Contains(err.Error(), "30s") {
		t.Errorf("a bad deadline: %v", err)
	}
}

// TestHistory (item 11): a second call in flight does not hide the
// first's result; the history lists both, and choosing the first shows
// its result and puts its request back in the editor, to edit and send
// again as a new call.
func TestHistory(t *testing.T) {
	m, events, mu := pane(t)
	p := newProg(t, m)
	p.run(p.m.Pick(tuitest.Method(t, "acme.Users/Get")))
	p.m.SetRequest(`{"id": "7"}`)
	p.do(keySend)
	p.until("the first reply", shows(`"name": "user 7"`, "Status ("))
	p.run(p.m.Pick(tuitest.Method(t, "acme.Users/Update")))
	p.do(keySend) // in flight for an hour
	p.until("the second call in flight", shows("waiting for the call to end"))

	p.do(keyHistory)
	if p.m.FocusedPart() != FocusHistory {
		t.Fatalf("ctrl+r focused %v", p.m.FocusedPart())
	}
	v := p.m.View()
	for _, want := range []string{"#2", "acme.Users/Update", "calling…", "#1", "acme.Users/Get", "OK"} {
		if !strings.Contains(v, want) {
			t.Errorf("the history lacks %q:\n%s", want, v)
		}
	}
	p.do(keyDown)
	p.do(keyEnter)
	p.until("the first call shown again", func(m Model) bool { return m.shown == 1 })
	if !strings.Contains(p.m.Response().Content(), `"name": "user 7"`) || p.m.Request() != `{"id": "7"}` || p.m.Method().FullName() != "acme.Users.Get" {
		t.Fatalf("the first call is not shown again: request %q\n%s", p.m.Request(), p.m.Response().Content())
	}
	p.m.SetRequest(`{"id": "8"}`)
	p.do(keySend)
	p.until("the re-sent call", shows(`"name": "user 8"`, "Status ("))
	if p.m.History().Len() != 3 || p.m.InFlight() != 1 {
		t.Errorf("history %d calls, %d in flight; want 3 and the Update", p.m.History().Len(), p.m.InFlight())
	}
	if e := p.m.History().Entries()[0]; e.ID != 3 || e.State != history.OK {
		t.Errorf("the newest call is %+v", e)
	}
	// A request that does not parse is not a call: the last one stays
	// shown.
	p.m.SetRequest(`{"id": `)
	p.do(keySend)
	p.until("the refusal", func(m Model) bool { return m.editor.Err() != "" })
	if p.m.shown != 3 || p.m.History().Len() != 3 {
		t.Errorf("after a refused request: call %d shown, %d in the history; want #3 and 3", p.m.shown, p.m.History().Len())
	}
	p.m.Stop(tuitest.Context(t))
	mu.Lock()
	defer mu.Unlock()
	var codesSeen []string
	for _, ev := range *events {
		codesSeen = append(codesSeen, ev.Method+" "+calls.CodeName(ev.Status.Code()))
	}
	if len(codesSeen) != 3 {
		t.Errorf("observed %v, want both Gets and the cancelled Update", codesSeen)
	}
}

// TestRequestErrorAt (item 7): a request that is not JSON is refused
// with its line and column; the whole error is shown.
func TestRequestErrorAt(t *testing.T) {
	m, _, _ := pane(t)
	p := newProg(t, m)
	p.run(p.m.Pick(tuitest.Method(t, "acme.Users/Import")))
	p.m.SetRequest("{\"id\": \"a\"}\n{\"id\": oops}")
	p.do(keySend)
	p.until("the error", func(m Model) bool { return m.editor.Err() != "" })
	if got := p.m.editor.Err(); !strings.HasPrefix(got, "line 2:8: invalid character 'o'") {
		t.Errorf("error %q, want it at line 2:8", got)
	}
	if p.m.History().Len() != 0 {
		t.Error("a request that was not sent is in the history")
	}
	var pe *editor.PosError
	_, err := parseRequests(tuitest.Method(t, "acme.Users/Get"), "{\n  \"id\": 7,\n}", nil, true)
	if !asPos(err, &pe) || pe.Line != 3 || pe.Col != 1 {
		t.Errorf("trailing comma: %v, want line 3:1", err)
	}
}

func asPos(err error, pe **editor.PosError) bool { return errors.As(err, pe) }
