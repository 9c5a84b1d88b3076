// Package helpbar renders a program's keys at the bottom of the screen:
// one line of the keys that act now, which always keeps the last few keys
// (help and quit) in view however narrow the screen, and a full view whose
// groups of keys wrap into as many rows as the width needs, so nothing is
// cut.
package helpbar

import (
	"strings"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/lipgloss"

	"github.com/bcctl/bcctl/internal/tui/theme"
)

// Styles are the bar's styles.
type Styles struct {
	Key, Desc, Separator lipgloss.Style
}

// DefaultStyles returns the bar's styles in th.
func DefaultStyles(th theme.Theme) Styles {
	return Styles{Key: th.Key, Desc: th.KeyDesc, Separator: th.Muted}
}

// Model is the help bar.
type Model struct {
	Styles Styles
	// ShowAll shows every key instead of the one line.
	ShowAll bool

	width int
}

// New returns a bar styled by th.
func New(th theme.Theme) Model { return Model{Styles: DefaultStyles(th)} }

// SetWidth sets the bar's width in cells.
func (m *Model) SetWidth(width int) { m.width = width }

// Keys are what the bar shows.
type Keys struct {
	// Short are the keys that act now, most important first: the line
	// drops them from the end when it is short of room.
	Short []key.Binding
	// Keep end the line and are never dropped (help, quit).
	Keep []key.Binding
	// Full are every key, in groups, for the full view (Keep included
	// where the program wants them).
	Full [][]key.Binding
}

const (
	separator = " • "
	ellipsis  = "…"
	columnGap = 4
)

// View renders the line, or every key when ShowAll is set.
func (m Model) View(k Keys) string {
	if m.ShowAll {
		return m.full(k.Full)
	}
	return m.short(k.Short, k.Keep)
}

func (m Model) item(b key.Binding) string {
	h := b.Help()
	return m.Styles.Key.Render(h.Key) + " " + m.Styles.Desc.Render(h.Desc)
}

func enabled(bs []key.Binding) []key.Binding {
	out := make([]key.Binding, 0, len(bs))
	for _, b := range bs {
		if b.Enabled() && b.Help().Key != "" {
			out = append(out, b)
		}
	}
	return out
}

// short lays out one line: as many of short as fit, then keep.
func (m Model) short(short, keep []key.Binding) string {
	short, keep = enabled(short), enabled(keep)
	sep := m.Styles.Separator.Render(separator)
	tail := make([]string, len(keep))
	for i, b := range keep {
		tail[i] = m.item(b)
	}
	tailText := strings.Join(tail, sep)
	for n := len(short); n >= 0; n-- {
		parts := make([]string, 0, n+2)
		for _, b := range short[:n] {
			parts = append(parts, m.item(b))
		}
		if n < len(short) {
			parts = append(parts, m.Styles.Separator.Render(ellipsis))
		}
		if tailText != "" {
			parts = append(parts, tailText)
		}
		line := strings.Join(parts, sep)
		if m.width <= 0 || lipgloss.Width(line) <= m.width {
			return line
		}
	}
	return theme.Fit(tailText, m.width)
}

// full lays out each group as a column (keys aligned, then their
// descriptions) and packs the columns into rows of columns that fit the
// width.
func (m Model) full(groups [][]key.Binding) string {
	var cols []string
	for _, g := range groups {
		if c := m.column(enabled(g)); c != "" {
			cols = append(cols, c)
		}
	}
	gap := strings.Repeat(" ", columnGap)
	var rows []string
	var row []string
	rowWidth := 0
	flush := func() {
		if len(row) > 0 {
			rows = append(rows, lipgloss.JoinHorizontal(lipgloss.Top, row...))
		}
		row, rowWidth = nil, 0
	}
	for _, c := range cols {
		w := lipgloss.Width(c)
		if len(row) > 0 && m.width > 0 && rowWidth+columnGap+w > m.width {
			flush()
		}
		if len(row) > 0 {
			row = append(row, gap)
			rowWidth += columnGap
		}
		row = append(row, c)
		rowWidth += w
	}
	flush()
	out := strings.Join(rows, "\n")
	if m.width > 0 {
		lines := strings.Split(out, "\n")
		for i, l := range lines {
			lines[i] = strings.TrimRight(theme.Fit(l, m.width), " ")
		}
		out = strings.Join(lines, "\n")
	}
	return out
}

func (m Model) column(bs []key.Binding) string {
	if len(bs) == 0 {
		return ""
	}
	kw := 0
	for _, b := range bs {
		kw = max(kw, lipgloss.Width(b.Help().Key))
	}
	lines := make([]string, len(bs))
	for i, b := range bs {
		h := b.Help()
		lines[i] = m.Styles.Key.Render(h.Key+strings.Repeat(" ", kw-lipgloss.Width(h.Key))) + " " + m.Styles.Desc.Render(h.Desc)
	}
	// Pad every line to the column's width, so the next column lines up.
	w := 0
	for _, l := range lines {
		w = max(w, lipgloss.Width(l))
	}
	for i, l := range lines {
		lines[i] = l + strings.Repeat(" ", w-lipgloss.Width(l))
	}
	return strings.Join(lines, "\n")
}
