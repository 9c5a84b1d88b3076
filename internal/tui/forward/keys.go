package forward

import (
	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/bcctl/bcctl/internal/tui/history"
	"github.com/bcctl/bcctl/internal/tui/picker"
)

// Update handles keys (when active) and the events of the calls in
// flight.
func (m Model) Update(msg tea.Msg) (Model, tea.Cmd) {
	if m, cmd, ok := m.callEvent(msg); ok {
		return m, cmd
	}
	switch msg := msg.(type) {
	case picker.LoadedMsg:
		m.picker, _ = m.picker.Update(msg)
		return m, nil
	case picker.PickedMsg:
		return m, m.Pick(msg.Method)
	case history.PickedMsg:
		return m, m.load(msg.ID)
	case tea.KeyMsg:
		if !m.active {
			return m, nil
		}
		return m.key(msg)
	}
	return m, nil
}

// nextPart is the tab order of the parts below the method line.
var nextPart = map[Focus]Focus{
	FocusEditor: FocusMetadata, FocusMetadata: FocusDeadline, FocusDeadline: FocusResponse, FocusResponse: FocusEditor,
}

func (m Model) key(msg tea.KeyMsg) (Model, tea.Cmd) {
	switch m.focus {
	case FocusPicker:
		// In the picker, keys only pick: nothing is sent or cancelled
		// from behind it.
		if key.Matches(msg, m.KeyMap.Leave) && m.method != nil {
			return m, m.goBack()
		}
		var cmd tea.Cmd
		m.picker, cmd = m.picker.Update(msg)
		return m, cmd
	case FocusHistory:
		if key.Matches(msg, m.KeyMap.Leave) || key.Matches(msg, m.KeyMap.History) {
			return m, m.goBack()
		}
		var cmd tea.Cmd
		m.history, cmd = m.history.Update(msg)
		return m, cmd
	}
	switch {
	case key.Matches(msg, m.KeyMap.Send):
		return m, m.Send()
	case key.Matches(msg, m.KeyMap.EndSend):
		m.EndSend()
		return m, nil
	case key.Matches(msg, m.KeyMap.Cancel):
		m.Cancel()
		return m, nil
	case key.Matches(msg, m.KeyMap.Pick):
		return m, m.OpenPicker()
	case key.Matches(msg, m.KeyMap.History):
		return m, m.OpenHistory()
	case key.Matches(msg, m.KeyMap.NextPart):
		return m, m.setFocus(nextPart[m.focus])
	case m.focus != FocusResponse && key.Matches(msg, m.KeyMap.Leave):
		return m, m.setFocus(FocusResponse)
	case m.focus == FocusResponse && key.Matches(msg, m.KeyMap.Edit):
		return m, m.setFocus(FocusEditor)
	}
	var cmd tea.Cmd
	switch m.focus {
	case FocusEditor:
		m.editor, cmd = m.editor.Update(msg)
	case FocusMetadata, FocusDeadline:
		if msg.Type == tea.KeyEnter {
			return m, m.setFocus(FocusEditor)
		}
		if m.focus == FocusMetadata {
			m.meta, cmd = m.meta.Update(msg)
		} else {
			m.deadline, cmd = m.deadline.Update(msg)
		}
	default:
		m.resp, cmd = m.resp.Update(msg)
	}
	return m, cmd
}

// ShortHelp returns the keys that act in the focused part, for a help
// bar, most important first.
func (m Model) ShortHelp() []key.Binding {
	k := m.KeyMap
	switch m.focus {
	case FocusPicker:
		p := m.picker.KeyMap
		out := []key.Binding{
			key.NewBinding(key.WithKeys("up", "down"), key.WithHelp("↑/↓", "select method")),
			p.Pick,
			key.NewBinding(key.WithKeys(""), key.WithHelp("type", "to filter")),
		}
		if m.method != nil {
			out = append(out, backKey())
		}
		return out
	case FocusHistory:
		h := m.history.KeyMap
		return []key.Binding{key.NewBinding(key.WithKeys("up", "down"), key.WithHelp("↑/↓", "select call")), h.Pick, backKey()}
	}
	c := m.calls[m.shown]
	send := k.Send
	var out []key.Binding
	if c != nil && c.sending && c.method == m.method {
		send.SetHelp(k.Send.Help().Key, "send next message")
		out = append(out, send, k.EndSend)
	} else {
		out = append(out, send)
	}
	if c != nil && c.running {
		out = append(out, k.Cancel)
	}
	out = append(out, k.Pick, k.History, k.NextPart)
	if m.focus == FocusResponse {
		out = append(out, k.Edit)
	} else {
		out = append(out, k.Leave)
	}
	return out
}

// FullHelp returns every key of the focused part, grouped, for the help
// screen.
func (m Model) FullHelp() [][]key.Binding {
	k := m.KeyMap
	switch m.focus {
	case FocusPicker:
		p := m.picker.KeyMap
		return [][]key.Binding{{p.Up, p.Down, p.Pick, backKey()}}
	case FocusHistory:
		h := m.history.KeyMap
		return [][]key.Binding{{h.Up, h.Down, h.Pick, backKey()}}
	}
	return [][]key.Binding{{k.Send, k.EndSend, k.Cancel}, {k.Pick, k.History}, {k.Edit, k.NextPart, k.Leave}}
}

func backKey() key.Binding {
	return key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "back to the request"))
}
