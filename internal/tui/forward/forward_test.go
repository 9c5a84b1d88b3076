package forward

import (
	"strings"
	"sync"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/tui/answer"
	"github.com/bcctl/bcctl/internal/tui/internal/tuitest"
	"github.com/bcctl/bcctl/internal/tui/theme"
)

// pane returns a forward pane connected to a fresh upstream, its calls
// observed.
func pane(t *testing.T) (Model, *[]*calls.Event, *sync.Mutex) {
	t.Helper()
	upstream := tuitest.StartUpstream(t, "", nil)
	r := answer.NewResponder(answer.Options{})
	t.Cleanup(r.Close)
	cc := tuitest.Dial(t, upstream.Addr, r)
	var mu sync.Mutex
	var events []*calls.Event
	obs := calls.ObserverFunc(func(ev *calls.Event) {
		mu.Lock()
		events = append(events, ev)
		mu.Unlock()
	})
	src := tuitest.Corpus(t)
	m := New(Config{Source: src, Invoker: Observed(ConnInvoker(cc), obs, calls.Forward, calls.Peer{Addr: upstream.Addr}), Target: upstream.Addr}, theme.New(nil))
	m.SetSize(100, 30)
	m, _ = m.Update(m.Init()())
	m.Activate()
	return m, &events, &mu
}

// drive runs cmd and every Cmd that follows from it, as the program would,
// until none is left.
func drive(t *testing.T, m Model, cmd tea.Cmd) Model {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for cmd != nil {
		if time.Now().After(deadline) {
			t.Fatal("the call did not end within 20s")
		}
		msg := cmd()
		if batch, ok := msg.(tea.BatchMsg); ok { // cursor blinks and the like
			cmd = nil
			for _, c := range batch {
				if c != nil {
					m, cmd = m.Update(c())
				}
			}
			continue
		}
		m, cmd = m.Update(msg)
	}
	return m
}

func TestSendUnary(t *testing.T) {
	m, events, mu := pane(t)
	m = drive(t, m, m.Pick(tuitest.Method(t, "acme.Users/Get")))
	if !strings.Contains(m.Request(), `"id"`) {
		t.Fatalf("the editor lacks the request template: %q", m.Request())
	}
	m.SetRequest(`{"id": "7"}`)
	m.SetMetadata(metadata.Pairs("x-test", "yes", "x-b", "2"))
	m = drive(t, m, m.Send())
	if m.Running() {
		t.Fatal("still running")
	}
	content := m.Response().Content()
	for _, want := range []string{"x-served-by: upstream", `"name": "user 7"`, "OK", "x-trailer: done"} {
		if !strings.Contains(content, want) {
			t.Errorf("response view lacks %q:\n%s", want, content)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(*events) != 1 {
		t.Fatalf("observed %d calls, want 1", len(*events))
	}
	ev := (*events)[0]
	if ev.Origin != calls.Made || ev.Dir != calls.Forward || ev.Method != "acme.Users/Get" || len(ev.Requests) != 1 ||
		len(ev.Responses) != 1 || ev.Status.Code() != codes.OK || ev.Header.Get("x-served-by") == nil || ev.Trailer.Get("x-trailer") == nil ||
		ev.Metadata.Get("x-test")[0] != "yes" {
		t.Errorf("observed %+v", ev)
	}
}

func TestMetadataLine(t *testing.T) {
	tests := []struct {
		line, want, err string
	}{
		{"", "", ""},
		{"x-a: 1; X-B: two words ;", "x-a: 1; x-b: two words", ""},
		{"x-a: 1; x-a: 2", "x-a: 1; x-a: 2", ""},
		{"no colon", "", "metadata"},
	}
	for _, tt := range tests {
		md, err := ParseHeaders(tt.line)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseHeaders(%q) error = %v, want one mentioning %q", tt.line, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseHeaders(%q): %v", tt.line, err)
			continue
		}
		if got := FormatHeaders(md); got != tt.want {
			t.Errorf("ParseHeaders(%q) = %q, want %q", tt.line, got, tt.want)
		}
	}
}

func TestSendInvalidRequest(t *testing.T) {
	m, events, mu := pane(t)
	m = drive(t, m, m.Pick(tuitest.Method(t, "acme.Users/Get")))
	m.SetRequest(`{"id": 7, "nope": 1}`)
	m = drive(t, m, m.Send())
	if v := m.View(); !strings.Contains(v, "✗") || !strings.Contains(v, "nope") {
		t.Errorf("the error is not shown under the editor:\n%s", v)
	}
	m.SetRequest(`{} {}`)
	m = drive(t, m, m.Send())
	if v := m.View(); !strings.Contains(v, "exactly one request") {
		t.Errorf("two requests for a unary method:\n%s", v)
	}
	m.SetRequest(`{}`)
	m.SetMetadata(nil)
	m.meta.SetValue("bad header")
	m = drive(t, m, m.Send())
	if v := m.View(); !strings.Contains(v, "✗ metadata") {
		t.Errorf("a bad metadata line:\n%s", v)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(*events) != 0 {
		t.Errorf("invalid requests were sent: %d calls", len(*events))
	}
}

func TestSendServerStreamAndFailure(t *testing.T) {
	m, events, mu := pane(t)
	m = drive(t, m, m.Pick(tuitest.Method(t, "acme.Users/List")))
	m = drive(t, m, m.Send())
	content := m.Response().Content()
	for _, want := range []string{"Response 1", "Response 3", `"name": "linus"`, "OK"} {
		if !strings.Contains(content, want) {
			t.Errorf("response view lacks %q:\n%s", want, content)
		}
	}
	m = drive(t, m, m.Pick(tuitest.Method(t, "acme.Users/Delete"))) // no rule answers it
	m = drive(t, m, m.Send())
	if content := m.Response().Content(); !strings.Contains(content, "UNIMPLEMENTED") {
		t.Errorf("response view lacks the status:\n%s", content)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(*events) != 2 || len((*events)[0].Responses) != 3 || (*events)[1].Status.Code() != codes.Unimplemented {
		t.Errorf("observed %d calls", len(*events))
	}
}
