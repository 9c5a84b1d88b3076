package forward

import (
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/lipgloss"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/tui/picker"
	"github.com/bcctl/bcctl/internal/tui/theme"
)

// View renders the pane, exactly its size.
func (m Model) View() string {
	if m.width <= 0 || m.height <= 0 {
		return ""
	}
	switch {
	case m.focus == FocusHistory:
		return m.history.View()
	case m.focus == FocusPicker || m.method == nil:
		return m.picker.View()
	}
	head := m.Styles.Method.Render(dynamic.MethodName(m.method)) + " " +
		m.Styles.Kind.Render("("+picker.Kind(m.method)+", "+string(m.method.Input().FullName())+" → "+string(m.method.Output().FullName())+")")
	dl := m.deadline
	if dl.Value() == "" {
		// textinput counts the prompt in Width when it shows the
		// placeholder.
		dl.Width += lipgloss.Width(dl.Prompt)
	}
	fields := theme.Fit(m.meta.View(), m.width-m.deadlineWidth()-1) + " " + theme.Fit(dl.View(), m.deadlineWidth())
	hint := "request (JSON)"
	if m.method.IsStreamingClient() {
		hint = "messages: JSON values one after another"
		if c := m.calls[m.shown]; c != nil && c.sending && c.method == m.method {
			hint = "next messages (JSON)"
		}
	}
	state := m.state()
	body := m.height - headLines
	var view string
	if m.width >= sideBySide {
		left := m.width / 2
		view = lipgloss.JoinHorizontal(lipgloss.Top,
			theme.FitLines(m.editor.View(), left-1, body),
			strings.TrimSuffix(strings.Repeat(" │\n", max(body, 1)), "\n"),
			theme.FitLines(m.resp.View(), m.width-left-2, body))
		hint = theme.Fit(m.Styles.Hint.Render(hint), left) + state
	} else {
		view = m.editor.View() + "\n" + m.Styles.Hint.Render("──") + " " + state + "\n" + m.resp.View()
		hint = m.Styles.Hint.Render(hint)
	}
	return theme.FitLines(head+"\n"+fields+"\n"+hint+"\n"+view, m.width, m.height)
}

// state says how the call shown stands: "#3 calling…", "#3 OK 12ms".
func (m Model) state() string {
	c := m.calls[m.shown]
	if c == nil {
		return ""
	}
	id := fmt.Sprintf("#%d ", c.id)
	if c.target != "" && c.target != m.cfg.Target {
		id = fmt.Sprintf("#%d to %s ", c.id, c.target)
	}
	switch {
	case c.sending:
		return m.Styles.Running.Render(fmt.Sprintf("%ssending, %d sent", id, c.sent))
	case c.running:
		return m.Styles.Running.Render(id + "calling…")
	case c.failed != nil:
		return m.Styles.Error.Render(id + "could not call")
	case c.status != nil && c.status.Code() == 0:
		return m.Styles.OK.Render(id + "OK " + c.elapsed.Round(time.Millisecond).String())
	case c.status != nil:
		return m.Styles.Error.Render(id + calls.CodeName(c.status.Code()) + " " + c.elapsed.Round(time.Millisecond).String())
	}
	return ""
}
