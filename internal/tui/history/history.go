// Package history is the list of the calls a person made from the TUI,
// newest first: when each started, its method, where it went, and how it
// stands (in flight, sending, or the status it ended with). Choosing one
// shows it again, so it can be read, edited and sent anew.
package history

import (
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/bcctl/bcctl/internal/tui/theme"
)

// State is where a call stands.
type State int

// States of a call.
const (
	// Running: the call is in flight.
	Running State = iota + 1
	// Sending: a client stream that waits for more messages.
	Sending
	// OK: the call ended with OK.
	OK
	// Failed: the call ended with another status, or could not be made.
	Failed
)

// Entry is one call.
type Entry struct {
	// ID numbers the calls from 1.
	ID int
	// Method is "pkg.Svc/Method"; Target says where the call went.
	Method, Target string
	// Started is when the call started.
	Started time.Time
	// State is where it stands; Outcome says it in a word or two
	// ("calling…", "OK", "NOT_FOUND", "could not call").
	State   State
	Outcome string
	// Elapsed is how long it took, once over.
	Elapsed time.Duration
}

// PickedMsg is sent when a call is chosen.
type PickedMsg struct{ ID int }

// KeyMap are the list's keys.
type KeyMap struct {
	Up, Down, Pick key.Binding
}

// DefaultKeyMap returns the list's default keys.
func DefaultKeyMap() KeyMap {
	return KeyMap{
		Up:   key.NewBinding(key.WithKeys("up", "k", "ctrl+p"), key.WithHelp("↑/k", "newer call")),
		Down: key.NewBinding(key.WithKeys("down", "j", "ctrl+n"), key.WithHelp("↓/j", "older call")),
		Pick: key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "show the call, to edit and send again")),
	}
}

// Styles are the list's styles.
type Styles struct {
	Title, Time, Method, Target, Running, OK, Error, Selected, Empty lipgloss.Style
}

// DefaultStyles returns the list's styles in th.
func DefaultStyles(th theme.Theme) Styles {
	return Styles{
		Title: th.Accent, Time: th.Muted, Method: th.Text, Target: th.Muted,
		Running: th.Warn, OK: th.OK, Error: th.Error, Selected: th.Selected, Empty: th.Muted,
	}
}

// Model is the list.
type Model struct {
	KeyMap KeyMap
	Styles Styles

	entries []Entry // newest first
	cursor  int
	offset  int
	width   int
	height  int
	focused bool
}

// New returns an empty list styled by th.
func New(th theme.Theme) Model {
	return Model{KeyMap: DefaultKeyMap(), Styles: DefaultStyles(th)}
}

// Upsert adds e as the newest call, or replaces the entry with its ID.
func (m *Model) Upsert(e Entry) {
	for i := range m.entries {
		if m.entries[i].ID == e.ID {
			m.entries[i] = e
			return
		}
	}
	m.entries = append([]Entry{e}, m.entries...)
	if len(m.entries) > 1 {
		m.cursor++ // the selection stays on the same call
	}
	m.clamp()
}

// Remove removes the call with id.
func (m *Model) Remove(id int) {
	for i, e := range m.entries {
		if e.ID == id {
			m.entries = append(m.entries[:i], m.entries[i+1:]...)
			if i < m.cursor {
				m.cursor--
			}
			m.clamp()
			return
		}
	}
}

// Len returns the number of calls.
func (m Model) Len() int { return len(m.entries) }

// Entries returns the calls, newest first.
func (m Model) Entries() []Entry { return m.entries }

// Select selects the call with id.
func (m *Model) Select(id int) {
	for i, e := range m.entries {
		if e.ID == id {
			m.cursor = i
			m.clamp()
			return
		}
	}
}

// Selected returns the selected call.
func (m Model) Selected() (Entry, bool) {
	if m.cursor < 0 || m.cursor >= len(m.entries) {
		return Entry{}, false
	}
	return m.entries[m.cursor], true
}

// SetSize sets the list's size in cells.
func (m *Model) SetSize(width, height int) {
	m.width, m.height = width, height
	m.clamp()
}

// Focus lets keys move the selection.
func (m *Model) Focus() { m.focused = true }

// Blur stops keys from moving the selection.
func (m *Model) Blur() { m.focused = false }

// Focused reports whether keys move the selection.
func (m Model) Focused() bool { return m.focused }

// Update moves the selection, and picks on enter (when focused).
func (m Model) Update(msg tea.Msg) (Model, tea.Cmd) {
	km, ok := msg.(tea.KeyMsg)
	if !ok || !m.focused {
		return m, nil
	}
	switch {
	case key.Matches(km, m.KeyMap.Up):
		m.cursor--
	case key.Matches(km, m.KeyMap.Down):
		m.cursor++
	case key.Matches(km, m.KeyMap.Pick):
		if e, ok := m.Selected(); ok {
			id := e.ID
			return m, func() tea.Msg { return PickedMsg{ID: id} }
		}
	}
	m.clamp()
	return m, nil
}

func (m *Model) clamp() {
	m.cursor = max(min(m.cursor, len(m.entries)-1), 0)
	rows := max(m.height-1, 1)
	if m.cursor < m.offset {
		m.offset = m.cursor
	}
	if m.cursor >= m.offset+rows {
		m.offset = m.cursor - rows + 1
	}
}

// View renders a title line and one line per call, exactly the list's
// size:
//
//	▸ #3 14:02:11  acme.Users/Get  → 127.0.0.1:9000  OK 3ms
func (m Model) View() string {
	if m.width <= 0 || m.height <= 0 {
		return ""
	}
	lines := []string{m.Styles.Title.Render(fmt.Sprintf("Calls made from here (%d)", len(m.entries)))}
	if len(m.entries) == 0 {
		lines = append(lines, m.Styles.Empty.Render("none yet: ctrl+s sends the request"))
	}
	methodW, outcomeW := 0, 0
	for _, e := range m.entries {
		methodW = max(methodW, lipgloss.Width(e.Method))
		outcomeW = max(outcomeW, lipgloss.Width(outcome(e)))
	}
	for i := m.offset; i < len(m.entries) && len(lines) < m.height; i++ {
		lines = append(lines, m.row(i, methodW, outcomeW))
	}
	return theme.FitLines(strings.Join(lines, "\n"), m.width, m.height)
}

// outcome is the outcome column: the word, and how long a finished call
// took.
func outcome(e Entry) string {
	s := e.Outcome
	if e.Elapsed > 0 && e.State != Running && e.State != Sending {
		s += " " + e.Elapsed.Round(time.Millisecond).String()
	}
	return s
}

func pad(s string, width int) string { return s + strings.Repeat(" ", max(width-lipgloss.Width(s), 0)) }

func (m Model) row(i, methodW, outcomeW int) string {
	e := m.entries[i]
	marker := "  "
	if i == m.cursor {
		marker = "▸ "
	}
	outcome := pad(outcome(e), outcomeW)
	id := fmt.Sprintf("#%-3d", e.ID)
	when := e.Started.Format("15:04:05")
	method := pad(e.Method, methodW)
	target := "→ " + e.Target
	if i == m.cursor && m.focused {
		return m.Styles.Selected.Render(theme.Fit(marker+id+" "+when+"  "+method+"  "+outcome+"  "+target, m.width))
	}
	style := m.Styles.Running
	switch e.State {
	case OK:
		style = m.Styles.OK
	case Failed:
		style = m.Styles.Error
	}
	return marker + id + " " + m.Styles.Time.Render(when) + "  " + m.Styles.Method.Render(method) + "  " +
		style.Render(outcome) + "  " + m.Styles.Target.Render(target)
}
