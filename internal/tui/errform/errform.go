// Package errform is the form for answering a call with an error: a status
// code chosen from the list of gRPC codes, a message, and optional details
// as JSON (google.protobuf.Any values with their "@type").
package errform

import (
	"strings"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"google.golang.org/grpc/codes"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/tui/editor"
	"github.com/bcctl/bcctl/internal/tui/theme"
)

// SubmitMsg is sent when the person submits the form.
type SubmitMsg struct {
	Code    codes.Code
	Message string
	// Details is the details JSON as typed ("" for none).
	Details string
}

// CancelMsg is sent when the person leaves the form without submitting.
type CancelMsg struct{}

// Codes are the codes the form offers, in order: every gRPC code but OK.
var Codes = func() []codes.Code {
	var out []codes.Code
	for c := codes.Canceled; c <= codes.Unauthenticated; c++ {
		out = append(out, c)
	}
	return out
}()

// KeyMap are the form's keys.
type KeyMap struct {
	Next, Prev     key.Binding
	CodeUp, CodeDn key.Binding
	Submit, Cancel key.Binding
}

// DefaultKeyMap returns the form's default keys.
func DefaultKeyMap() KeyMap {
	return KeyMap{
		Next:   key.NewBinding(key.WithKeys("tab"), key.WithHelp("tab", "next field")),
		Prev:   key.NewBinding(key.WithKeys("shift+tab"), key.WithHelp("shift+tab", "previous field")),
		CodeUp: key.NewBinding(key.WithKeys("up", "k"), key.WithHelp("↑/k", "previous code")),
		CodeDn: key.NewBinding(key.WithKeys("down", "j"), key.WithHelp("↓/j", "next code")),
		Submit: key.NewBinding(key.WithKeys("ctrl+s"), key.WithHelp("ctrl+s", "send error")),
		Cancel: key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "cancel")),
	}
}

// ShortHelp implements help.KeyMap.
func (k KeyMap) ShortHelp() []key.Binding {
	return []key.Binding{k.Submit, k.Next, k.CodeUp, k.CodeDn, k.Cancel}
}

// FullHelp implements help.KeyMap.
func (k KeyMap) FullHelp() [][]key.Binding {
	return [][]key.Binding{{k.Submit, k.Cancel}, {k.Next, k.Prev}, {k.CodeUp, k.CodeDn}}
}

// Styles are the form's styles.
type Styles struct {
	Label, FocusedLabel, Code, SelectedCode, Hint lipgloss.Style
}

// DefaultStyles returns the form's styles in th.
func DefaultStyles(th theme.Theme) Styles {
	return Styles{
		Label: th.Muted, FocusedLabel: th.Accent, Code: th.Text, SelectedCode: th.Selected, Hint: th.Muted,
	}
}

// Field is a field of the form.
type Field int

// The form's fields, in tab order.
const (
	FieldCode Field = iota
	FieldMessage
	FieldDetails
)

// Model is the form.
type Model struct {
	KeyMap KeyMap
	Styles Styles

	code    int // index in Codes
	message textinput.Model
	details editor.Model
	field   Field
	width   int
	height  int
}

// New returns a form with ABORTED chosen, styled by th.
func New(th theme.Theme) Model {
	ti := th.Input("", th.Muted, "status message")
	details := editor.New(th)
	details.SetPlaceholder("")
	m := Model{KeyMap: DefaultKeyMap(), Styles: DefaultStyles(th), message: ti, details: details}
	m.SetCode(codes.Aborted)
	return m
}

// Reset clears the form for a new call: code ABORTED, no message, no
// details, the code list focused.
func (m *Model) Reset() {
	m.SetCode(codes.Aborted)
	m.message.SetValue("")
	m.details.SetValue("")
	m.focus(FieldCode)
}

// SetCode chooses code.
func (m *Model) SetCode(c codes.Code) {
	for i, x := range Codes {
		if x == c {
			m.code = i
		}
	}
}

// Code returns the chosen code.
func (m Model) Code() codes.Code { return Codes[m.code] }

// SetMessage sets the message.
func (m *Model) SetMessage(s string) { m.message.SetValue(s) }

// SetDetails sets the details JSON.
func (m *Model) SetDetails(s string) { m.details.SetValue(s) }

// SetError shows err under the details (details that did not parse).
func (m *Model) SetError(err error) { m.details.SetError(err) }

// Field returns the focused field.
func (m Model) Field() Field { return m.field }

// Focus focuses the form's current field.
func (m *Model) Focus() tea.Cmd { return m.focus(m.field) }

func (m *Model) focus(f Field) tea.Cmd {
	m.field = f
	m.message.Blur()
	m.details.Blur()
	switch f {
	case FieldMessage:
		return m.message.Focus()
	case FieldDetails:
		return m.details.Focus()
	}
	return nil
}

// SetSize sets the form's size in cells.
func (m *Model) SetSize(width, height int) {
	m.width, m.height = width, height
	right := max(width-listWidth-1, 10)
	m.message.Width = max(right-4, 1)
	m.details.SetSize(right, max(height-4, 2))
}

const listWidth = 22

// Update handles the form's keys.
func (m Model) Update(msg tea.Msg) (Model, tea.Cmd) {
	km, ok := msg.(tea.KeyMsg)
	if !ok {
		return m, nil
	}
	switch {
	case key.Matches(km, m.KeyMap.Submit):
		sub := SubmitMsg{Code: m.Code(), Message: m.message.Value(), Details: m.details.Value()}
		return m, func() tea.Msg { return sub }
	case key.Matches(km, m.KeyMap.Cancel):
		return m, func() tea.Msg { return CancelMsg{} }
	case key.Matches(km, m.KeyMap.Next):
		return m, m.focus((m.field + 1) % 3)
	case key.Matches(km, m.KeyMap.Prev):
		return m, m.focus((m.field + 2) % 3)
	}
	var cmd tea.Cmd
	switch m.field {
	case FieldCode:
		switch {
		case key.Matches(km, m.KeyMap.CodeUp):
			m.code = max(m.code-1, 0)
		case key.Matches(km, m.KeyMap.CodeDn):
			m.code = min(m.code+1, len(Codes)-1)
		case km.Type == tea.KeyEnter:
			cmd = m.focus(FieldMessage)
		}
	case FieldMessage:
		if km.Type == tea.KeyEnter {
			return m, m.focus(FieldDetails)
		}
		m.message, cmd = m.message.Update(msg)
	case FieldDetails:
		m.details, cmd = m.details.Update(msg)
	}
	return m, cmd
}

// View renders the form: the code list on the left, the message and the
// details on the right.
func (m Model) View() string {
	if m.width <= 0 || m.height <= 0 {
		return ""
	}
	label := func(f Field, s string) string {
		if m.field == f {
			return m.Styles.FocusedLabel.Render("▸ " + s)
		}
		return m.Styles.Label.Render("  " + s)
	}
	// The code list, scrolled so the chosen code is visible.
	rows := max(m.height-1, 1)
	first := 0
	if m.code >= rows {
		first = m.code - rows + 1
	}
	list := []string{label(FieldCode, "Code")}
	for i := first; i < len(Codes) && len(list) <= rows; i++ {
		name := calls.CodeName(Codes[i])
		if i == m.code {
			list = append(list, m.Styles.SelectedCode.Render(theme.Fit("› "+name, listWidth-1)))
		} else {
			list = append(list, m.Styles.Code.Render(theme.Fit("  "+name, listWidth-1)))
		}
	}
	right := []string{
		label(FieldMessage, "Message"),
		"  " + m.message.View(),
		label(FieldDetails, "Details") + m.Styles.Hint.Render(` (optional JSON: {"@type": ...} or [...])`),
		m.details.View(),
	}
	rw := max(m.width-listWidth-1, 1)
	return lipgloss.JoinHorizontal(lipgloss.Top,
		theme.FitLines(strings.Join(list, "\n"), listWidth, m.height),
		" ",
		theme.FitLines(strings.Join(right, "\n"), rw, m.height))
}
