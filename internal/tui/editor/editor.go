// Package editor is a JSON editor for one message: a bubbles textarea
// pre-filled with a template of the message type, with a line under it for
// the error that a reply or request which does not fit the type gets.
package editor

import (
	"strings"

	"github.com/charmbracelet/bubbles/cursor"
	"github.com/charmbracelet/bubbles/textarea"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

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
	ta.MaxHeight = 0
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

// SetValue replaces the text and clears the error and note; the cursor
// goes to the start.
func (m *Model) SetValue(s string) {
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

// SetError shows err under the editor ("" or nil clears it).
func (m *Model) SetError(err error) {
	m.note = ""
	if err == nil {
		m.err = ""
		return
	}
	m.err = err.Error()
}

// SetNote shows a line of good news under the editor ("sent").
func (m *Model) SetNote(s string) { m.note, m.err = s, "" }

// Err returns the error shown, "" when none.
func (m Model) Err() string { return m.err }

// SetSize sets the editor's size in cells, the message line included.
func (m *Model) SetSize(width, height int) {
	m.width, m.height = width, height
	m.ta.SetWidth(max(width, 1))
	m.ta.SetHeight(max(height-1, 1))
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
	before := m.ta.Value()
	var cmd tea.Cmd
	m.ta, cmd = m.ta.Update(msg)
	if m.ta.Value() != before {
		m.err, m.note = "", ""
	}
	return m, cmd
}

// View renders the editor and its message line, exactly the editor's size.
func (m Model) View() string {
	if m.width <= 0 || m.height <= 0 {
		return ""
	}
	line := ""
	switch {
	case m.err != "":
		line = m.Styles.Error.Render("✗ " + firstLine(m.err))
	case m.note != "":
		line = m.Styles.Note.Render("✓ " + m.note)
	}
	body := m.ta.View()
	if m.height == 1 {
		return theme.Fit(line, m.width)
	}
	return theme.FitLines(body, m.width, m.height-1) + "\n" + theme.Fit(line, m.width)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}
