package editor

import (
	"errors"
	"strings"
	"testing"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"

	"github.com/bcctl/bcctl/internal/tui/internal/viewtest"
	"github.com/bcctl/bcctl/internal/tui/theme"
)

func newEditor(width, height int, value string) Model {
	m := New(theme.New(nil))
	m.SetSize(width, height)
	m.SetValue(value)
	return m
}

const vote = "{\n  \"transaction_id\": 7,\n  \"state\": \"COMMIT\"\n}"

func TestEditorGolden(t *testing.T) {
	tests := []struct {
		name   string
		width  int
		height int
		edit   func(m *Model)
	}{
		{name: "template", width: 40, height: 8},
		{name: "empty-placeholder", width: 40, height: 5, edit: func(m *Model) { m.SetValue("") }},
		{name: "error-wrapped", width: 40, height: 10, edit: func(m *Model) {
			m.SetError(&PosError{Line: 2, Col: 21, Err: errors.New(`field "transaction_id" of gitaly.VoteTransactionRequest takes a number, not a string with letters in it`)})
		}},
		{name: "error-capped-at-half", width: 24, height: 6, edit: func(m *Model) {
			m.SetError(errors.New(strings.Repeat("this message does not fit ", 6)))
		}},
		{name: "note", width: 40, height: 8, edit: func(m *Model) { m.SetNote("sent as the reply of call #3") }},
		{name: "focused-typing", width: 40, height: 8, edit: func(m *Model) {
			m.Focus()
			*m, _ = m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("x")})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newEditor(tt.width, tt.height, vote)
			if tt.edit != nil {
				tt.edit(&m)
			}
			view := ansi.Strip(m.View())
			viewtest.RequireGolden(t, view, tt.width, tt.height)
		})
	}
}

func TestEditingClearsTheErrorAndNote(t *testing.T) {
	type step struct {
		name     string
		focused  bool
		show     func(m *Model)
		wantErr  bool
		wantNote bool
	}
	tests := []step{
		{name: "error, focused", focused: true, show: func(m *Model) { m.SetError(errors.New("bad")) }},
		{name: "note, focused", focused: true, show: func(m *Model) { m.SetNote("sent") }},
		{name: "error, blurred: keys do nothing", show: func(m *Model) { m.SetError(errors.New("bad")) }, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newEditor(30, 6, "{}")
			if tt.focused {
				m.Focus()
			}
			tt.show(&m)
			before := m.Value()
			m, _ = m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("x")})
			if got := m.Err() != ""; got != tt.wantErr {
				t.Errorf("error shown after a key = %v, want %v", got, tt.wantErr)
			}
			if hasNote := strings.Contains(ansi.Strip(m.View()), "✓"); hasNote != tt.wantNote {
				t.Errorf("note shown after a key = %v, want %v", hasNote, tt.wantNote)
			}
			if edited := m.Value() != before; edited != tt.focused {
				t.Errorf("text edited = %v, want %v (value %q)", edited, tt.focused, m.Value())
			}
		})
	}
}

func TestLongTextIsKeptWhole(t *testing.T) {
	// The textarea caps its lines at MaxHeight: the editor grows it, so a
	// long message is never cut.
	var b strings.Builder
	b.WriteString("[\n")
	for i := range 250 {
		if i > 0 {
			b.WriteString(",\n")
		}
		b.WriteString("  1")
	}
	b.WriteString("\n]")
	m := newEditor(40, 10, b.String())
	if got := m.Value(); got != b.String() {
		t.Fatalf("value has %d lines, want %d", strings.Count(got, "\n")+1, strings.Count(b.String(), "\n")+1)
	}
	viewtest.RequireSize(t, ansi.Strip(m.View()), 40, 10)
}

func TestViewOfNoSize(t *testing.T) {
	m := New(theme.New(nil))
	if v := m.View(); v != "" {
		t.Errorf("View before SetSize = %q, want empty", v)
	}
	m.SetSize(10, 1)
	m.SetError(errors.New("no room"))
	viewtest.RequireSize(t, ansi.Strip(m.View()), 10, 1) // only the message line fits
}

func TestCheckJSON(t *testing.T) {
	tests := []struct {
		name       string
		text       string
		wantValues []string
		wantStarts []int
		wantErr    string
	}{
		{name: "blank", text: " \n "},
		{name: "one", text: `{"a": 1}`, wantValues: []string{`{"a": 1}`}, wantStarts: []int{0}},
		{name: "a stream", text: "{\"a\": 1}\n\n  {\"a\": 2} 3", wantValues: []string{`{"a": 1}`, `{"a": 2}`, `3`}, wantStarts: []int{0, 12, 21}},
		{name: "syntax error", text: "{\n  \"a\": ,\n}", wantErr: "line 2:8: invalid character ',' looking for beginning of value"},
		{name: "cut short", text: "{\n  \"a\": 1", wantErr: "line 2:9: unexpected end of JSON: a value is cut short"},
		{name: "after a good value", text: "{}\n{]", wantErr: "line 2:2: invalid character ']' looking for beginning of object key string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			values, starts, err := CheckJSON(tt.text)
			if tt.wantErr != "" {
				var pe *PosError
				if !errors.As(err, &pe) || err.Error() != tt.wantErr {
					t.Fatalf("CheckJSON error = %v, want PosError %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(values) != len(tt.wantValues) {
				t.Fatalf("got %d values, want %d", len(values), len(tt.wantValues))
			}
			for i := range values {
				if string(values[i]) != tt.wantValues[i] || starts[i] != tt.wantStarts[i] {
					t.Errorf("value %d = %s at %d, want %s at %d", i, values[i], starts[i], tt.wantValues[i], tt.wantStarts[i])
				}
			}
		})
	}
}

func TestAtCountsCharacters(t *testing.T) {
	text := "{\n  \"név\": é}"
	tests := []struct {
		off       int
		line, col int
	}{
		{0, 1, 1},
		{2, 2, 1},
		{len("{\n  \"név\": "), 2, 10}, // é is two bytes in név, one character
		{len(text) + 5, 2, 12},         // clamped to the end
		{-3, 1, 1},
	}
	for _, tt := range tests {
		pe := At(text, tt.off, errors.New("x"))
		if pe.Line != tt.line || pe.Col != tt.col {
			t.Errorf("At(%d) = %d:%d, want %d:%d", tt.off, pe.Line, pe.Col, tt.line, tt.col)
		}
	}
	if !errors.Is(At(text, 0, errBad), errBad) {
		t.Error("PosError does not unwrap to its error")
	}
}

var errBad = errors.New("bad")
