package picker

import (
	"testing"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/tui/internal/tuitest"
	"github.com/bcctl/bcctl/internal/tui/theme"
)

func loaded(t *testing.T) Model {
	t.Helper()
	m := New(theme.New(nil))
	msg := Load(tuitest.Context(t), tuitest.Corpus(t))()
	if lm := msg.(LoadedMsg); lm.Err != nil {
		t.Fatal(lm.Err)
	}
	m, _ = m.Update(msg)
	m.SetSize(60, 10)
	m.Focus()
	return m
}

func TestFilter(t *testing.T) {
	tests := []struct {
		filter string
		first  string
		n      int
	}{
		{"", "acme.Users/Get", 12},
		{"vote", "gitaly.RefTransaction/VoteTransaction", 1},
		{"opcreate", "gitaly.OperationService/UserCreateBranch", 1},
		{"userslist", "acme.Users/List", 1},
		{"zzz", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.filter, func(t *testing.T) {
			m := loaded(t)
			m.SetFilter(tt.filter)
			got := m.Matches()
			if len(got) < tt.n || (tt.n > 0 && got[0] != tt.first) || (tt.n == 0 && len(got) != 0) {
				t.Errorf("filter %q: matches %v, want %d starting with %q", tt.filter, got, tt.n, tt.first)
			}
		})
	}
}

func TestTypeMoveAndPick(t *testing.T) {
	m := loaded(t)
	for _, r := range "users" {
		m, _ = m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}})
	}
	if m.Filter() != "users" {
		t.Fatalf("filter = %q", m.Filter())
	}
	m, _ = m.Update(tea.KeyMsg{Type: tea.KeyDown})
	want, _ := m.Selected()
	_, cmd := m.Update(tea.KeyMsg{Type: tea.KeyEnter})
	if cmd == nil {
		t.Fatal("enter picked nothing")
	}
	p, ok := cmd().(PickedMsg)
	if !ok || p.Method != want {
		t.Errorf("picked %v, want %s", p.Method, dynamic.MethodName(want))
	}
	m.SetFilter("zzz")
	if _, cmd := m.Update(tea.KeyMsg{Type: tea.KeyEnter}); cmd != nil {
		t.Error("enter with no match picked something")
	}
}
