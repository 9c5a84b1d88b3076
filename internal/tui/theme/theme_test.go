package theme

import (
	"bytes"
	"strings"
	"testing"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"
)

func TestPaneIsExactlyItsSize(t *testing.T) {
	th := New(nil)
	tests := []struct {
		title, body   string
		width, height int
		focused       bool
	}{
		{"Calls", "a\nb", 20, 5, false},
		{"a very long title that does not fit", "x", 12, 3, true},
		{"", strings.Repeat("long line ", 10), 15, 4, false},
		{"t", "", 10, 2, true},
		{"", "", 4, 2, false},
	}
	for _, tt := range tests {
		out := th.Pane(tt.title, tt.body, tt.width, tt.height, tt.focused)
		lines := strings.Split(out, "\n")
		if len(lines) != tt.height {
			t.Errorf("%q: %d lines, want %d", tt.title, len(lines), tt.height)
		}
		for i, l := range lines {
			if w := lipgloss.Width(l); w != tt.width {
				t.Errorf("%q: line %d is %d wide, want %d: %q", tt.title, i, w, tt.width, l)
			}
		}
		if tt.focused != strings.Contains(lines[0], "●") {
			t.Errorf("%q: focus mark shown = %v, want %v", tt.title, !tt.focused, tt.focused)
		}
	}
	if th.Pane("x", "y", 3, 1, false) != "" {
		t.Error("a pane too small to draw should be empty")
	}
}

func TestFit(t *testing.T) {
	tests := []struct {
		s     string
		width int
		want  string
	}{
		{"abc", 5, "abc  "},
		{"abcdef", 4, "abc…"},
		{"héllo", 5, "héllo"},
		{"x", 0, ""},
	}
	for _, tt := range tests {
		if got := Fit(tt.s, tt.width); got != tt.want {
			t.Errorf("Fit(%q, %d) = %q, want %q", tt.s, tt.width, got, tt.want)
		}
	}
}

func TestNoColor(t *testing.T) {
	env := func(noColor string) func(string) string {
		return func(k string) string {
			if k == "NO_COLOR" {
				return noColor
			}
			return ""
		}
	}
	var buf bytes.Buffer
	plain := NewRenderer(&buf, env("1"))
	if plain.ColorProfile() != termenv.Ascii {
		t.Errorf("NO_COLOR: profile %v, want Ascii", plain.ColorProfile())
	}
	if s := New(plain).Error.Render("x"); s != "x" {
		t.Errorf("NO_COLOR rendered %q, want plain x", s)
	}
	colored := NewRenderer(&buf, env(""))
	colored.SetColorProfile(termenv.ANSI) // as a color terminal would be detected
	if s := New(colored).Error.Render("x"); s == "x" {
		t.Error("a color profile rendered no color")
	}
}

// TestTitleBarKeepsTheTabs: when the line is short of room the left part
// is cut, never the tabs (which say how to reach the other screen).
func TestTitleBarKeepsTheTabs(t *testing.T) {
	th := New(nil)
	left := "bcctl · connected to 127.0.0.1:9000 · 3 calls waiting"
	tests := []struct {
		width int
		want  string
	}{
		{80, left + "      [1 Calls]  2 Forward "},
		{60, "bcctl · connected to 127.0.0.1:9000 ·… [1 Calls]  2 Forward "},
		{20, "bcctl · connected t…"},
	}
	for _, tt := range tests {
		got := th.TitleBar(left, tt.width, 0, "Calls", "Forward")
		if got != tt.want {
			t.Errorf("width %d:\n got %q\nwant %q", tt.width, got, tt.want)
		}
		if w := lipgloss.Width(got); w != tt.width {
			t.Errorf("width %d: the bar is %d wide", tt.width, w)
		}
	}
}
