// Package editor is a JSON editor for one message: a bubbles textarea
// pre-filled with a template of the message type, with room under it for
// the error that a reply or request which does not fit the type gets,
// wrapped so it is read in full, and PosError for errors at a line and
// column of the text.
package editor

import (
	"strings"

	"github.com/charmbracelet/bubbles/cursor"
	"github.com/charmbracelet/bubbles/textarea"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"

	"github.com/bcctl/bcctl/internal/tui/theme"
)

// KeyMap are the editing keys (the textarea's).
type KeyMap = textarea.KeyMap

// DefaultKeyMap returns the textarea's keys.
func DefaultKeyMap() KeyMap { return textarea.DefaultKeyMap }

// Styles are the editor's styles.
type Styles struct {
	Focused, Blurred textarea.Style
	Error, Note      lipgloss.Style
}

// DefaultStyles returns the editor's styles in th.
func DefaultStyles(th theme.Theme) Styles {
	base := textarea.Style{
		Base:             th.Text,
		CursorLine:       th.Text,
		CursorLineNumber: th.Accent,
		EndOfBuffer:      th.Muted,
		LineNumber:       th.Muted,
		Placeholder:      th.Muted,
		Prompt:           th.Muted,
		Text:             th.Text,
	}
	blurred := base
	blurred.CursorLineNumber = th.Muted
	blurred.Text = th.Muted
	blurred.CursorLine = th.Muted
	return Styles{Focused: base, Blurred: blurred, Error: th.Error, Note: th.OK}
}

// Model is the editor.
type Model struct {
	Styles Styles

	ta     textarea.Model
	err    string
	note   string
	width  int
	height int
}

// New returns an empty editor styled by th.
func New(th theme.Theme) Model {
	ta := textarea.New()
	ta.ShowLineNumbers = true
	ta.Prompt = ""
	ta.CharLimit = 0
	ta.MaxHeight = minGutterLines
	ta.MaxWidth = 0
	ta.Placeholder = "{}"
	ta.Cursor.SetMode(cursor.CursorStatic)
	st := DefaultStyles(th)
	ta.FocusedStyle, ta.BlurredStyle = st.Focused, st.Blurred
	ta.Cursor.Style = th.Selected
	ta.Cursor.TextStyle = th.Text
	ta.Blur()
	return Model{Styles: st, ta: ta}
}

// SetStyles changes the styles.
func (m *Model) SetStyles(st Styles) {
	m.Styles = st
	m.ta.FocusedStyle, m.ta.BlurredStyle = st.Focused, st.Blurred
}

// The textarea pads its line numbers to the digits of its MaxHeight, which
// also caps the lines it takes: the editor keeps MaxHeight a power of ten
// minus one above the line count, so numbers line up at 10 lines and more
// and the text can always grow.
const minGutterLines = 99

// growFor makes room for n lines of text.
func (m *Model) growFor(n int) {
	for n+1 >= m.ta.MaxHeight {
		m.ta.MaxHeight = m.ta.MaxHeight*10 + 9
	}
}

// SetValue replaces the text and clears the error and note; the cursor
// goes to the start.
func (m *Model) SetValue(s string) {
	m.growFor(strings.Count(s, "\n") + 1)
	m.ta.SetValue(s)
	for m.ta.Line() > 0 {
		m.ta.CursorUp()
	}
	m.ta.CursorStart()
	m.err, m.note = "", ""
}

// SetPlaceholder sets the text shown, muted, while the editor is empty.
func (m *Model) SetPlaceholder(s string) { m.ta.Placeholder = s }

// Value returns the text.
func (m Model) Value() string { return m.ta.Value() }

// SetError shows err under the editor, wrapped over as many lines as it
// needs up to half the editor (nil clears it).
func (m *Model) SetError(err error) {
	m.note = ""
	m.err = ""
	if err != nil {
		m.err = err.Error()
	}
	m.fit()
}

// SetNote shows a line of good news under the editor ("sent"); "" clears
// it.
func (m *Model) SetNote(s string) {
	m.note, m.err = s, ""
	m.fit()
}

// Err returns the error shown, "" when none.
func (m Model) Err() string { return m.err }

// SetSize sets the editor's size in cells, the message lines included.
func (m *Model) SetSize(width, height int) {
	m.width, m.height = width, height
	m.ta.SetWidth(max(width, 1))
	m.fit()
}

// message returns the lines under the text: the error (wrapped, at most
// half the editor) or the note, always at least one line.
func (m Model) message() []string {
	switch {
	case m.err != "":
		limit := max(m.height/2, 1)
		lines := strings.Split(ansi.Wrap("✗ "+m.err, max(m.width, 1), ""), "\n")
		if len(lines) > limit {
			lines = lines[:limit]
			lines[limit-1] = theme.Fit(lines[limit-1]+" …", m.width)
		}
		for i, l := range lines {
			lines[i] = m.Styles.Error.Render(l)
		}
		return lines
	case m.note != "":
		return []string{m.Styles.Note.Render(theme.Fit("✓ "+m.note, m.width))}
	}
	return []string{""}
}

// fit gives the text what the message lines leave.
func (m *Model) fit() {
	m.ta.SetHeight(max(m.height-len(m.message()), 1))
}

// Focus starts editing.
func (m *Model) Focus() tea.Cmd { return m.ta.Focus() }

// Blur stops editing.
func (m *Model) Blur() { m.ta.Blur() }

// Focused reports whether the editor takes keys.
func (m Model) Focused() bool { return m.ta.Focused() }

// KeyMap returns the editing keys, for help.
func (m Model) KeyMap() KeyMap { return m.ta.KeyMap }

// Update edits on keys (when focused). Editing clears the error.
func (m Model) Update(msg tea.Msg) (Model, tea.Cmd) {
	if !m.ta.Focused() {
		return m, nil
	}
	if km, ok := msg.(tea.KeyMsg); ok {
		m.growFor(m.ta.LineCount() + strings.Count(string(km.Runes), "\n") + 1)
	}
	before := m.ta.Value()
	var cmd tea.Cmd
	m.ta, cmd = m.ta.Update(msg)
	if m.ta.Value() != before && (m.err != "" || m.note != "") {
		m.err, m.note = "", ""
		m.fit()
	}
	return m, cmd
}

// View renders the editor and its message lines, exactly the editor's
// size.
func (m Model) View() string {
	if m.width <= 0 || m.height <= 0 {
		return ""
	}
	msg := m.message()
	if m.height <= len(msg) {
		return theme.FitLines(strings.Join(msg, "\n"), m.width, m.height)
	}
	return theme.FitLines(m.ta.View(), m.width, m.height-len(msg)) + "\n" + theme.FitLines(strings.Join(msg, "\n"), m.width, len(msg))
}
