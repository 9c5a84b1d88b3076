package theme

import (
	"io"
	"os"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	"github.com/bcctl/bcctl/internal/tui/termbg"
)

// NewRenderer returns a renderer for out. When getenv("NO_COLOR") is set
// (getenv nil means os.Getenv) it renders no colors or attributes at all;
// otherwise the profile is detected from out (Ascii when out is not a
// terminal). The background is decided by termbg, never by asking the
// terminal, which may never answer.
func NewRenderer(out io.Writer, getenv func(string) string) *lipgloss.Renderer {
	if getenv == nil {
		getenv = os.Getenv
	}
	r := lipgloss.NewRenderer(out)
	r.SetHasDarkBackground(termbg.Dark(getenv))
	if getenv("NO_COLOR") != "" {
		r.SetColorProfile(termenv.Ascii)
	}
	return r
}

// Plain returns a renderer that renders no colors or attributes, for tests
// and golden files.
func Plain() *lipgloss.Renderer {
	r := lipgloss.NewRenderer(io.Discard)
	r.SetColorProfile(termenv.Ascii)
	return r
}

// Theme is the palette and base styles of bcctl's screens.
type Theme struct {
	// Renderer renders every style of the theme.
	Renderer *lipgloss.Renderer

	// Text is ordinary text; Muted is secondary text (times, hints).
	Text, Muted lipgloss.Style
	// Title is a pane's title; Accent marks what is current or chosen.
	Title, Accent lipgloss.Style
	// OK, Warn and Error color outcomes: an OK status, a call about to
	// expire, an error.
	OK, Warn, Error lipgloss.Style
	// Selected is the selected row of a list.
	Selected lipgloss.Style
	// Key and KeyDesc render key bindings in help.
	Key, KeyDesc lipgloss.Style
	// Border is the border of a pane; FocusedBorder of the focused pane.
	Border, FocusedBorder lipgloss.Style
	// Tab and ActiveTab render the screen switcher.
	Tab, ActiveTab lipgloss.Style
}

// The ANSI colors of the theme.
const (
	colorAccent = lipgloss.Color("6") // cyan
	colorMuted  = lipgloss.Color("8") // bright black
	colorOK     = lipgloss.Color("2") // green
	colorWarn   = lipgloss.Color("3") // yellow
	colorError  = lipgloss.Color("1") // red
	colorFocus  = lipgloss.Color("5") // magenta
)

// New returns bcctl's theme rendered by r (nil means Plain()).
func New(r *lipgloss.Renderer) Theme {
	if r == nil {
		r = Plain()
	}
	s := r.NewStyle
	return Theme{
		Renderer:      r,
		Text:          s(),
		Muted:         s().Foreground(colorMuted),
		Title:         s().Bold(true),
		Accent:        s().Foreground(colorAccent).Bold(true),
		OK:            s().Foreground(colorOK),
		Warn:          s().Foreground(colorWarn),
		Error:         s().Foreground(colorError),
		Selected:      s().Reverse(true),
		Key:           s().Foreground(colorAccent),
		KeyDesc:       s().Foreground(colorMuted),
		Border:        s().Foreground(colorMuted),
		FocusedBorder: s().Foreground(colorFocus),
		Tab:           s().Foreground(colorMuted),
		ActiveTab:     s().Foreground(colorAccent).Bold(true).Underline(true),
	}
}
