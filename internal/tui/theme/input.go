package theme

import (
	"github.com/charmbracelet/bubbles/textinput"
	"github.com/charmbracelet/lipgloss"
)

// Input returns a one-line text field in the theme: prompt in
// promptStyle, placeholder muted, the cursor as a selection.
func (t Theme) Input(prompt string, promptStyle lipgloss.Style, placeholder string) textinput.Model {
	ti := textinput.New()
	ti.Prompt = prompt
	ti.PromptStyle = promptStyle
	ti.Placeholder = placeholder
	ti.PlaceholderStyle = t.Muted
	ti.TextStyle = t.Text
	ti.Cursor.Style = t.Selected
	return ti
}
