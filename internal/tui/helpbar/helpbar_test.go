package helpbar

import (
	"strings"
	"testing"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/lipgloss"

	"github.com/bcctl/bcctl/internal/tui/theme"
)

func bind(k, desc string) key.Binding {
	return key.NewBinding(key.WithKeys(k), key.WithHelp(k, desc))
}

var (
	short = []key.Binding{bind("↑/↓", "select"), bind("enter", "edit reply"), bind("s", "send reply"), bind("e", "error"), bind("tab", "next pane")}
	keep  = []key.Binding{bind("?", "help"), bind("q", "quit")}
)

// TestShortKeepsHelpAndQuit: however narrow, the line ends with the keys
// to keep; the others are dropped from the end, and an ellipsis says so.
func TestShortKeepsHelpAndQuit(t *testing.T) {
	tests := []struct {
		width int
		want  string
	}{
		{0, "↑/↓ select • enter edit reply • s send reply • e error • tab next pane • ? help • q quit"},
		{80, "↑/↓ select • enter edit reply • s send reply • e error • … • ? help • q quit"},
		{40, "↑/↓ select • … • ? help • q quit"},
		{15, "? help • q quit"},
		{10, "? help • …"},
	}
	for _, tt := range tests {
		m := New(theme.New(nil))
		m.SetWidth(tt.width)
		got := m.View(Keys{Short: short, Keep: keep})
		if got != tt.want {
			t.Errorf("width %d:\n got %q\nwant %q", tt.width, got, tt.want)
		}
	}
}

// TestFullWraps: groups that do not fit side by side go to the next row;
// no line is wider than the bar, and every key is shown.
func TestFullWraps(t *testing.T) {
	groups := [][]key.Binding{
		{bind("ctrl+s", "send reply"), bind("ctrl+x", "answer with error"), bind("ctrl+r", "let the script answer")},
		{bind("enter", "edit reply"), bind("s", "send reply"), bind("e", "error")},
		{bind("↑/k", "previous call"), bind("↓/j", "next call"), bind("g", "first call"), bind("G", "last call")},
		{bind("tab", "next pane"), bind("shift+tab", "previous pane"), bind("esc", "stop editing")},
	}
	for _, width := range []int{120, 80, 40} {
		m := New(theme.New(nil))
		m.SetWidth(width)
		m.ShowAll = true
		got := m.View(Keys{Full: append(groups, keep), Keep: keep})
		for _, l := range strings.Split(got, "\n") {
			if w := lipgloss.Width(l); w > width {
				t.Errorf("width %d: line %q is %d wide", width, l, w)
			}
		}
		for _, g := range append(groups, keep) {
			for _, b := range g {
				if !strings.Contains(got, b.Help().Desc) {
					t.Errorf("width %d: %q is not shown:\n%s", width, b.Help().Desc, got)
				}
			}
		}
	}
}
