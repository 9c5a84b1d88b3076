package msgview

import (
	"fmt"
	"strings"
	"testing"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/tui/internal/viewtest"
	"github.com/bcctl/bcctl/internal/tui/theme"
)

func newView(width, height int, sections ...Section) Model {
	m := New(theme.New(nil))
	m.SetSize(width, height)
	m.Reset(sections)
	return m
}

func view(m Model) string { return ansi.Strip(m.View()) }

func press(k string) tea.KeyMsg {
	switch k {
	case "down":
		return tea.KeyMsg{Type: tea.KeyDown}
	case "up":
		return tea.KeyMsg{Type: tea.KeyUp}
	case "pgdown":
		return tea.KeyMsg{Type: tea.KeyPgDown}
	}
	return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(k)}
}

// lines makes a body of n numbered lines.
func lines(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		if i > 1 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "line %d", i)
	}
	return b.String()
}

func TestMsgviewGolden(t *testing.T) {
	st, err := status.New(codes.Aborted, "no quorum").WithDetails(&errdetails.ErrorInfo{Reason: "NO_QUORUM", Domain: "gitaly.example"})
	if err != nil {
		t.Fatal(err)
	}
	req, err := structpb.NewStruct(map[string]any{"transaction_id": 7, "node": "gitaly-1"})
	if err != nil {
		t.Fatal(err)
	}
	call := []Section{
		{Title: "Request", Body: JSON(req, nil, "")},
		{Title: "Metadata", Body: Metadata(metadata.Pairs("x-transaction", "42", "x-trace-bin", "\x01\x02"))},
		{Title: "Trailers", Body: Metadata(nil), Tone: "muted"},
		{Title: "Status", Body: Status(st, nil), Tone: StatusTone(st)},
	}
	tests := []struct {
		name          string
		width, height int
		sections      []Section
		keys          []string
	}{
		{name: "call", width: 50, height: 18, sections: call},
		{name: "wrapped", width: 24, height: 18, sections: call},
		{name: "scrolled", width: 30, height: 5, sections: []Section{{Title: "Responses", Body: lines(20)}}, keys: []string{"down", "down", "pgdown"}},
		{name: "empty", width: 20, height: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newView(tt.width, tt.height, tt.sections...)
			m.Focus()
			for _, k := range tt.keys {
				m, _ = m.Update(press(k))
			}
			v := view(m)
			viewtest.RequireGolden(t, v, tt.width, tt.height)
		})
	}
}

func TestKeysScrollOnlyWhenFocused(t *testing.T) {
	m := newView(20, 3, Section{Body: lines(10)})
	top := view(m)
	m, _ = m.Update(press("down"))
	if view(m) != top {
		t.Error("a blurred view scrolled on a key")
	}
	m.Focus()
	m, _ = m.Update(press("down"))
	if v := view(m); !strings.HasPrefix(v, "line 2") {
		t.Errorf("focused view after down starts %q, want line 2", strings.SplitN(v, "\n", 2)[0])
	}
	// The letters other panes use do not scroll.
	before := view(m)
	for _, k := range []string{"f", "b", "d", "u"} {
		m, _ = m.Update(press(k))
	}
	if view(m) != before {
		t.Error("f, b, d or u scrolled the view")
	}
}

func TestFollowStaysAtTheBottomUntilScrolledUp(t *testing.T) {
	body := lines(5)
	m := newView(20, 3, Section{Body: body})
	m.Follow()
	last := func() string {
		ls := strings.Split(view(m), "\n")
		return strings.TrimSpace(ls[len(ls)-1])
	}
	for n := 6; n <= 8; n++ {
		body += fmt.Sprintf("\nline %d", n)
		m.SetSections([]Section{{Body: body}})
		if got, want := last(), fmt.Sprintf("line %d", n); got != want {
			t.Fatalf("following: last line %q, want %q", got, want)
		}
	}
	m.Focus()
	m, _ = m.Update(press("up"))
	m.SetSections([]Section{{Body: body + "\nline 9"}})
	if got := last(); got != "line 7" {
		t.Errorf("after scrolling up, new content moved the view: last line %q, want line 7", got)
	}
	// Reset shows another call from the top.
	m.Reset([]Section{{Body: lines(10)}})
	if v := view(m); !strings.HasPrefix(v, "line 1") {
		t.Errorf("after Reset the view starts %q, want line 1", strings.SplitN(v, "\n", 2)[0])
	}
}

func TestRenderers(t *testing.T) {
	ok := status.New(codes.OK, "")
	tests := []struct {
		name, got, want string
	}{
		{"metadata none", Metadata(nil), "(none)"},
		{"metadata sorted", Metadata(metadata.Pairs("b", "2", "a", "1")), "a: 1\nb: 2"},
		{"status nil", Status(nil, nil), ""},
		{"status ok", Status(ok, nil), "OK"},
		{"status error", Status(status.New(codes.NotFound, "no user 7"), nil), "NOT_FOUND: no user 7"},
		{"tone nil", StatusTone(nil), ""},
		{"tone ok", StatusTone(ok), "ok"},
		{"tone error", StatusTone(status.New(codes.Unavailable, "")), "error"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}

// TestJSONBytes checks that JSON shows bytes as protobuf JSON does by
// default and as text with dynamic.BytesText (--bytes text).
func TestJSONBytes(t *testing.T) {
	msg := &errdetails.DebugInfo{Detail: "main"}
	wrapped, err := anypb.New(wrapperspb.Bytes([]byte("refs/heads/main")))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		bytes dynamic.BytesMode
		want  string
	}{
		{"", `"value": "cmVmcy9oZWFkcy9tYWlu"`},
		{dynamic.BytesText, `"value": "refs/heads/main"`},
	} {
		if got := JSON(wrapped, nil, tt.bytes); !strings.Contains(got, tt.want) {
			t.Errorf("bytes %q: got %s, want it to contain %s", tt.bytes, got, tt.want)
		}
	}
	if got := JSON(msg, nil, dynamic.BytesText); !strings.Contains(got, `"detail": "main"`) {
		t.Errorf("a message without bytes: got %s", got)
	}
}
