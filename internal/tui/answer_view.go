package tui

import (
	"fmt"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"

	"github.com/bcctl/bcctl/internal/tui/helpbar"
)

// Layout of the call screen.
const (
	minQueueWidth = 36
	maxQueueWidth = 52
)

// bodyHeight is the height left for panes under the title bar and above
// the help.
func (m AnswerModel) bodyHeight() int {
	return max(m.height-1-lipgloss.Height(m.helpView()), 3)
}

func (m AnswerModel) queueWidth() int {
	return min(max(m.width*7/20, minQueueWidth), maxQueueWidth, max(m.width-20, 10))
}

func (m AnswerModel) detailHeight() int {
	return max(m.bodyHeight()*11/20, 5)
}

// layout gives every component its size.
func (m *AnswerModel) layout() {
	if m.width == 0 || m.height == 0 {
		return
	}
	body := m.bodyHeight()
	qw := m.queueWidth()
	rw := m.width - qw
	dh := m.detailHeight()
	eh := body - dh
	m.queue.SetSize(qw-2, body-2)
	m.detail.SetSize(rw-2, dh-2)
	m.editor.SetSize(rw-2, eh-2)
	m.outcome.SetSize(rw-2, eh-2)
	m.errForm.SetSize(rw-2, eh-2)
	if m.cfg.Forward != nil {
		m.fwd.SetSize(m.width-2, body-2)
	}
}

// View implements tea.Model.
func (m AnswerModel) View() string {
	if m.quitting || m.width == 0 || m.height == 0 {
		return ""
	}
	var body string
	if m.screen == screenForward {
		title := "Forward call"
		if m.cfg.Forward != nil && m.cfg.Forward.Target != "" {
			title += " to " + m.cfg.Forward.Target
		}
		body = m.th.Pane(title, m.fwd.View(), m.width, m.bodyHeight(), true)
	} else {
		body = m.callScreen()
	}
	return m.titleBar() + "\n" + body + "\n" + m.helpView()
}

func (m AnswerModel) titleBar() string {
	left := m.th.Title.Render("bcctl")
	pending := m.queue.Pending()
	switch {
	case m.lost != nil:
		// Not connected any more: say why, and that the queue is there
		// to be read.
		left += m.th.Error.Render(" · " + m.lost.Error() + " · q leaves")
	case m.cfg.Title != "":
		left += m.th.Muted.Render(" · " + m.cfg.Title)
	}
	switch {
	case m.lost != nil:
	case m.closed:
		left += m.th.Error.Render(" · closed")
	case pending == 1:
		left += m.th.Warn.Render(" · 1 call waiting")
	case pending > 1:
		left += m.th.Warn.Render(fmt.Sprintf(" · %d calls waiting", pending))
	}
	if pending > 0 && m.screen == screenForward {
		left += m.th.Warn.Render(" (f2 to answer)")
	}
	screens := []string{"Calls"}
	if m.cfg.Forward != nil {
		screens = append(screens, "Forward")
	}
	active := 0
	if m.screen == screenForward {
		active = 1
	}
	return m.th.TitleBar(left, m.width, active, screens...)
}

func (m AnswerModel) callScreen() string {
	body := m.bodyHeight()
	qw := m.queueWidth()
	rw := m.width - qw
	dh := m.detailHeight()

	qTitle := "Calls"
	if n := m.queue.Len(); n > 0 {
		qTitle = fmt.Sprintf("Calls (%d)", n)
	}
	left := m.th.Pane(qTitle, m.queue.View(), qw, body, m.pane == paneQueue)

	dTitle := "Call"
	if cv, ok := m.selected(); ok {
		dTitle = fmt.Sprintf("Call #%d · %s", cv.call.ID, cv.state)
	}
	detail := m.th.Pane(dTitle, m.detail.View(), rw, dh, m.pane == paneDetail)

	var lower string
	cv, ok := m.selected()
	switch {
	case m.errOpen:
		lower = m.th.Pane("Answer with an error", m.errForm.View(), rw, body-dh, m.pane == paneEditor)
	case ok && !cv.state.Open():
		lower = m.th.Pane(outcomeTitle(cv), m.outcome.View(), rw, body-dh, m.pane == paneEditor)
	case !ok:
		lower = m.th.Pane("Reply", m.th.Muted.Render("the reply to the selected call is written here"), rw, body-dh, m.pane == paneEditor)
	default:
		eTitle := "Reply"
		if cv, ok := m.selected(); ok {
			out := string(cv.call.Method.Output().FullName())
			if cv.call.ServerStreams() {
				eTitle = "Next message (" + out + ")"
			} else {
				eTitle = "Reply (" + out + ")"
			}
		}
		lower = m.th.Pane(eTitle, m.editor.View(), rw, body-dh, m.pane == paneEditor)
	}
	return lipgloss.JoinHorizontal(lipgloss.Top, left, lipgloss.JoinVertical(lipgloss.Left, detail, lower))
}

// helpView renders the keys that do something now.
func (m AnswerModel) helpView() string {
	if q := m.quitQuestion(); m.confirmQuit && q != "" {
		// The question takes the place of the keys, in full.
		return m.th.Error.Render(ansi.Wrap(q, max(m.width, 1), ""))
	}
	m.help.SetWidth(m.width)
	return m.help.View(m.helpKeys())
}

func (m AnswerModel) helpKeys() helpbar.Keys {
	k := m.keys
	keep := []key.Binding{k.HelpLetter, k.QuitLetter}
	if m.editing() {
		keep = []key.Binding{k.Help, k.Quit}
	}
	global := [][]key.Binding{{k.Calls, k.Forward, k.Screen}, helpAndQuit(k.Help, k.HelpLetter, k.Quit, k.QuitLetter)}
	if m.cfg.Forward == nil {
		global = global[1:]
	}
	if m.screen == screenForward {
		short := append(m.fwd.ShortHelp(), k.Screen)
		if n := m.queue.Pending(); n > 0 {
			// Calls wait for an answer: the way to them comes first.
			answer := k.Screen
			answer.SetHelp(k.Screen.Help().Key, fmt.Sprintf("answer %d waiting", n))
			short = append([]key.Binding{answer}, m.fwd.ShortHelp()...)
		}
		return helpbar.Keys{Short: short, Keep: keep, Full: append(m.fwd.FullHelp(), global...)}
	}
	cv, ok := m.selected()
	streaming := ok && cv.call.ServerStreams()
	if m.errOpen && m.pane == paneEditor {
		f := m.errForm.KeyMap
		return helpbar.Keys{Short: f.ShortHelp(), Keep: keep, Full: append(f.FullHelp(), global...)}
	}
	// The actions act on a pending call only: for another, they are not
	// offered.
	open := ok && cv.state.Open()
	var actions, letters []key.Binding
	if open {
		actions = []key.Binding{k.Send, k.Error}
		letters = []key.Binding{k.Edit, k.SendLetter, k.ErrorLetter}
		if streaming {
			actions = append(actions, k.End)
			letters = append(letters, k.EndLetter)
		}
		if m.cfg.Responder.HasScript() {
			actions = append(actions, k.Script)
			letters = append(letters, k.ScriptLetter)
		}
	}
	nav := []key.Binding{k.NextPane, k.PrevPane, k.Leave, k.Transport}
	var short []key.Binding
	switch {
	case m.editing():
		short = append(append(short, actions...), k.Leave, k.NextPane, k.Screen)
	case m.pane == paneQueue:
		short = append(append(short, key.NewBinding(key.WithKeys("up", "down"), key.WithHelp("↑/↓", "select"))), letters...)
	case !open:
		back := k.Leave
		back.SetHelp(k.Leave.Help().Key, "back to the calls")
		short = append(short, key.NewBinding(key.WithKeys("up", "down"), key.WithHelp("↑/↓", "scroll")), back)
	default:
		short = append(short, letters...)
	}
	if !m.editing() {
		short = append(short, k.NextPane)
		if m.cfg.Forward != nil {
			short = append(short, k.Forward)
		}
	}
	full := append([][]key.Binding{actions, letters, {m.queue.KeyMap.Up, m.queue.KeyMap.Down, m.queue.KeyMap.First, m.queue.KeyMap.Last}, nav}, global...)
	return helpbar.Keys{Short: short, Keep: keep, Full: full}
}
