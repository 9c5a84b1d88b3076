package errform

import (
	"strings"
	"testing"

	tea "github.com/charmbracelet/bubbletea"
	"google.golang.org/grpc/codes"

	"github.com/bcctl/bcctl/internal/tui/theme"
)

func typeText(m Model, s string) Model {
	for _, r := range s {
		m, _ = m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}})
	}
	return m
}

func TestFillAndSubmit(t *testing.T) {
	m := New(theme.New(nil))
	m.SetSize(80, 12)
	m.Focus()
	if m.Code() != codes.Aborted {
		t.Fatalf("default code %v, want ABORTED", m.Code())
	}
	m, _ = m.Update(tea.KeyMsg{Type: tea.KeyDown})
	m, _ = m.Update(tea.KeyMsg{Type: tea.KeyDown})
	if m.Code() != codes.Unimplemented {
		t.Errorf("two down from ABORTED: %v, want UNIMPLEMENTED", m.Code())
	}
	m, _ = m.Update(tea.KeyMsg{Type: tea.KeyEnter}) // to the message
	m = typeText(m, "not here")
	m, _ = m.Update(tea.KeyMsg{Type: tea.KeyTab}) // to the details
	m = typeText(m, `{"@type": "x"}`)
	if m.Field() != FieldDetails {
		t.Fatalf("field %v, want details", m.Field())
	}
	if !strings.Contains(m.View(), "UNIMPLEMENTED") {
		t.Errorf("the view does not show the chosen code:\n%s", m.View())
	}
	_, cmd := m.Update(tea.KeyMsg{Type: tea.KeyCtrlS})
	sub, ok := cmd().(SubmitMsg)
	if !ok || sub.Code != codes.Unimplemented || sub.Message != "not here" || sub.Details != `{"@type": "x"}` {
		t.Errorf("submitted %+v", sub)
	}
	_, cmd = m.Update(tea.KeyMsg{Type: tea.KeyEsc})
	if _, ok := cmd().(CancelMsg); !ok {
		t.Error("esc did not cancel")
	}
	m.Reset()
	if m.Code() != codes.Aborted || m.Field() != FieldCode {
		t.Errorf("after Reset: %v, field %v", m.Code(), m.Field())
	}
	// The code list stops at both ends.
	for i := 0; i < 30; i++ {
		m, _ = m.Update(tea.KeyMsg{Type: tea.KeyUp})
	}
	if m.Code() != codes.Canceled {
		t.Errorf("top of the list: %v, want CANCELLED", m.Code())
	}
}
