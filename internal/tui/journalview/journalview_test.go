package journalview

import (
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/bcctl/bcctl/internal/journal"
	"github.com/bcctl/bcctl/internal/tui/theme"
)

var t0 = time.Date(2026, 11, 24, 14, 0, 0, 0, time.UTC)

func entry(id uint64, dir, origin, method, code string, peer uint64) journal.Entry {
	return journal.Entry{ID: id, Time: t0.Add(time.Duration(id) * time.Second), Dir: dir, Origin: origin,
		Method: method, Peer: &journal.Peer{ID: peer, Addr: "127.0.0.1:5000"}, Status: &journal.Status{Code: code}, DurationMS: 1.5}
}

func newView() Model {
	m := New(theme.New(nil))
	m.Location = time.UTC
	m.SetSize(100, 12)
	m.Focus()
	m.Add(
		entry(1, journal.DirReverse, journal.OriginMade, "gitaly.RefTransaction/VoteTransaction", "OK", 1),
		entry(2, journal.DirForward, journal.OriginAnswered, "gitaly.OperationService/UserCreateBranch", "OK", 1),
		entry(3, journal.DirForward, journal.OriginAnswered, "acme.Users/Get", "NOT_FOUND", 2),
	)
	return m
}

func TestFilterWords(t *testing.T) {
	tests := []struct {
		filter string
		want   []uint64
	}{
		{"", []uint64{1, 2, 3}},
		{"vote", []uint64{1}},
		{"forward", []uint64{2, 3}},
		{`"peer 1"`, []uint64{1, 2}},
		{`"peer 1" create`, []uint64{2}},
		{"FORWARD not_found", []uint64{3}},
		{"reverse not_found", nil},
		{"127.0.0.1:5000 rev→", []uint64{1}},
	}
	for _, tt := range tests {
		t.Run(tt.filter, func(t *testing.T) {
			m := newView()
			m.SetFilter(tt.filter)
			var got []uint64
			for _, i := range m.shown {
				got = append(got, m.entries[i].ID)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("filter %q shows %v, want %v", tt.filter, got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("filter %q shows %v, want %v", tt.filter, got, tt.want)
				}
			}
		})
	}
}

func TestTerms(t *testing.T) {
	got := strings.Join(Terms(`Vote "Peer 1"  x "" "unclosed`), "|")
	if want := "vote|peer 1|x|unclosed"; got != want {
		t.Errorf("Terms = %q, want %q", got, want)
	}
}

func press(s string) tea.KeyMsg {
	switch s {
	case "enter":
		return tea.KeyMsg{Type: tea.KeyEnter}
	case "esc":
		return tea.KeyMsg{Type: tea.KeyEsc}
	case "up":
		return tea.KeyMsg{Type: tea.KeyUp}
	}
	return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(s)}
}

func TestFollowFilterAndDetails(t *testing.T) {
	m := newView()
	if e, _ := m.Selected(); e.ID != 3 {
		t.Fatalf("selected #%d, want the newest (#3) while following", e.ID)
	}
	m, _ = m.Update(press("up"))
	m.Add(entry(4, journal.DirForward, journal.OriginAnswered, "acme.Users/Get", "OK", 2))
	if e, _ := m.Selected(); e.ID != 2 {
		t.Errorf("selected #%d after moving up and a new entry, want #2 (no longer following)", e.ID)
	}
	for _, k := range []string{"/", "g", "e", "t", "enter"} {
		m, _ = m.Update(press(k))
	}
	if m.Filter() != "get" || m.Filtering() {
		t.Fatalf("filter %q, filtering %v", m.Filter(), m.Filtering())
	}
	if all, shown := m.Len(); all != 4 || shown != 2 {
		t.Errorf("Len = %d, %d, want 4, 2", all, shown)
	}
	m, _ = m.Update(press("enter")) // details
	v := m.View()
	if !strings.Contains(v, "Status") || !strings.Contains(v, "acme.Users/Get") {
		t.Errorf("details missing:\n%s", v)
	}
	if n := len(strings.Split(v, "\n")); n != 12 {
		t.Errorf("view has %d lines, want 12", n)
	}
	m, _ = m.Update(press("esc")) // closes the details
	m, _ = m.Update(press("esc")) // clears the filter
	if m.Filter() != "" {
		t.Errorf("esc left the filter %q", m.Filter())
	}
}

func TestLine(t *testing.T) {
	e := entry(1, journal.DirReverse, journal.OriginMade, "gitaly.RefTransaction/VoteTransaction", "OK", 3)
	e.Rule = &journal.Rule{Name: "vote", Pos: "a.yaml:1:1"}
	want := "14:00:01.000 rev→ peer 3  gitaly.RefTransaction/VoteTransaction  OK  1.5ms  vote"
	if got := Line(e, time.UTC); got != want {
		t.Errorf("Line =\n%q, want\n%q", got, want)
	}
	e = entry(2, journal.DirReverse, journal.OriginAnswered, "x.Y/Z", "OK", 0)
	e.By = journal.ByTUI
	if got := Line(e, time.UTC); !strings.Contains(got, "rev← plain") || !strings.HasSuffix(got, "by tui") {
		t.Errorf("Line = %q, want a plain peer answered by tui", got)
	}
}
