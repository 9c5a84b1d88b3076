// Package picker chooses a method of a schema: type to filter the methods
// fuzzily ("vote" finds gitaly.RefTransaction/VoteTransaction), move with
// the arrows, enter to pick.
package picker

import (
	"context"
	"sort"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/sahilm/fuzzy"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/tui/theme"
)

// PickedMsg is sent when a method is picked.
type PickedMsg struct {
	Method protoreflect.MethodDescriptor
}

// LoadedMsg carries the methods of a schema, loaded by Load.
type LoadedMsg struct {
	Methods []protoreflect.MethodDescriptor
	Err     error
}

// Load returns a tea.Cmd that lists every method of src (reflection
// sources ask the server, so this is I/O and runs in the Cmd).
func Load(ctx context.Context, src dynamic.Source) tea.Cmd {
	return func() tea.Msg {
		methods, err := dynamic.AllMethods(ctx, src)
		return LoadedMsg{Methods: methods, Err: err}
	}
}

// KeyMap are the picker's keys (letters go to the filter).
type KeyMap struct {
	Up, Down, Pick key.Binding
}

// DefaultKeyMap returns the picker's default keys.
func DefaultKeyMap() KeyMap {
	return KeyMap{
		Up:   key.NewBinding(key.WithKeys("up", "ctrl+p"), key.WithHelp("↑", "previous method")),
		Down: key.NewBinding(key.WithKeys("down", "ctrl+n"), key.WithHelp("↓", "next method")),
		Pick: key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "pick method")),
	}
}

// Styles are the picker's styles.
type Styles struct {
	Prompt, Method, Match, Kind, Selected, Empty, Error lipgloss.Style
}

// DefaultStyles returns the picker's styles in th.
func DefaultStyles(th theme.Theme) Styles {
	return Styles{
		Prompt: th.Accent, Method: th.Text, Match: th.Accent, Kind: th.Muted,
		Selected: th.Selected, Empty: th.Muted, Error: th.Error,
	}
}

// Model is the picker.
type Model struct {
	KeyMap KeyMap
	Styles Styles

	input   textinput.Model
	schema  []protoreflect.MethodDescriptor // the schema's methods
	offered []protoreflect.MethodDescriptor // listed first, with label
	label   string
	chosen  protoreflect.MethodDescriptor   // highlighted when the list changes
	methods []protoreflect.MethodDescriptor // offered, then the rest of schema
	names   []string
	matches []fuzzy.Match
	cursor  int
	offset  int
	width   int
	height  int
	loaded  bool
	err     error
}

// New returns an empty picker styled by th.
func New(th theme.Theme) Model {
	ti := th.Input("› ", th.Accent, "type to filter methods")
	return Model{KeyMap: DefaultKeyMap(), Styles: DefaultStyles(th), input: ti}
}

// SetMethods sets the methods to choose from.
func (m *Model) SetMethods(methods []protoreflect.MethodDescriptor) {
	m.schema = methods
	m.loaded = true
	m.err = nil
	m.rebuild()
}

// SetOffered lists methods first, each marked with label ("offered by
// peer 1"): the methods the called side says it offers. The other methods
// follow. nil lists the methods alone again.
func (m *Model) SetOffered(methods []protoreflect.MethodDescriptor, label string) {
	m.offered, m.label = methods, label
	m.rebuild()
}

func (m *Model) rebuild() {
	seen := map[protoreflect.FullName]bool{}
	m.methods = m.methods[:0:0]
	for _, md := range append(append([]protoreflect.MethodDescriptor{}, m.offered...), m.schema...) {
		if !seen[md.FullName()] {
			seen[md.FullName()] = true
			m.methods = append(m.methods, md)
		}
	}
	m.names = make([]string, len(m.methods))
	for i, md := range m.methods {
		m.names[i] = dynamic.MethodName(md)
	}
	m.filter()
	m.Select(m.chosen)
}

// isOffered reports whether methods[i] is one of the offered.
func (m Model) isOffered(i int) bool { return i < len(m.offered) }

// SetError shows why the methods could not be loaded.
func (m *Model) SetError(err error) { m.err, m.loaded = err, true }

// SetFilter sets the filter text.
func (m *Model) SetFilter(s string) {
	m.input.SetValue(s)
	m.input.CursorEnd()
	m.filter()
}

// Filter returns the filter text.
func (m Model) Filter() string { return m.input.Value() }

// Open starts a new choice: the filter is emptied, so typing starts a new
// search, and current (the method chosen last, nil for none) is
// highlighted. The picker takes the keys.
func (m *Model) Open(current protoreflect.MethodDescriptor) tea.Cmd {
	m.chosen = current
	m.SetFilter("")
	m.Select(current)
	return m.Focus()
}

// Select highlights md when it is among the matches.
func (m *Model) Select(md protoreflect.MethodDescriptor) {
	if md == nil {
		return
	}
	for i, mt := range m.matches {
		if m.methods[mt.Index].FullName() == md.FullName() {
			m.cursor = i
			m.scroll()
			return
		}
	}
}

// Selected returns the highlighted method.
func (m Model) Selected() (protoreflect.MethodDescriptor, bool) {
	if m.cursor < 0 || m.cursor >= len(m.matches) {
		return nil, false
	}
	return m.methods[m.matches[m.cursor].Index], true
}

// Matches returns the methods that match the filter, best first.
func (m Model) Matches() []string {
	out := make([]string, len(m.matches))
	for i, mt := range m.matches {
		out[i] = mt.Str
	}
	return out
}

// Focus starts taking keys.
func (m *Model) Focus() tea.Cmd { return m.input.Focus() }

// Blur stops taking keys.
func (m *Model) Blur() { m.input.Blur() }

// Focused reports whether the picker takes keys.
func (m Model) Focused() bool { return m.input.Focused() }

// SetSize sets the picker's size in cells.
func (m *Model) SetSize(width, height int) {
	m.width, m.height = width, height
	m.input.Width = max(width-3, 1)
	m.scroll()
}

func (m *Model) filter() {
	q := strings.TrimSpace(m.input.Value())
	if q == "" {
		m.matches = make([]fuzzy.Match, len(m.names))
		for i, n := range m.names {
			m.matches[i] = fuzzy.Match{Str: n, Index: i}
		}
	} else {
		m.matches = fuzzy.Find(q, m.names)
		// The offered methods first, each group best match first.
		sort.SliceStable(m.matches, func(i, j int) bool {
			return m.isOffered(m.matches[i].Index) && !m.isOffered(m.matches[j].Index)
		})
	}
	m.cursor, m.offset = 0, 0
}

func (m *Model) scroll() {
	rows := max(m.height-1, 1)
	if m.cursor < m.offset {
		m.offset = m.cursor
	}
	if m.cursor >= m.offset+rows {
		m.offset = m.cursor - rows + 1
	}
}

// Update filters on typing, moves on the arrows and picks on enter.
func (m Model) Update(msg tea.Msg) (Model, tea.Cmd) {
	switch msg := msg.(type) {
	case LoadedMsg:
		if msg.Err != nil {
			m.SetError(msg.Err)
		} else {
			m.SetMethods(msg.Methods)
		}
		return m, nil
	case tea.KeyMsg:
		if !m.input.Focused() {
			return m, nil
		}
		switch {
		case key.Matches(msg, m.KeyMap.Up):
			m.cursor = max(m.cursor-1, 0)
			m.scroll()
			return m, nil
		case key.Matches(msg, m.KeyMap.Down):
			m.cursor = max(min(m.cursor+1, len(m.matches)-1), 0)
			m.scroll()
			return m, nil
		case key.Matches(msg, m.KeyMap.Pick):
			if md, ok := m.Selected(); ok {
				return m, func() tea.Msg { return PickedMsg{Method: md} }
			}
			return m, nil
		}
	}
	before := m.input.Value()
	var cmd tea.Cmd
	m.input, cmd = m.input.Update(msg)
	if m.input.Value() != before {
		m.filter()
	}
	return m, cmd
}

// View renders the filter line and the matching methods, exactly the
// picker's size.
func (m Model) View() string {
	if m.width <= 0 || m.height <= 0 {
		return ""
	}
	lines := []string{m.input.View()}
	switch {
	case m.err != nil:
		lines = append(lines, m.Styles.Error.Render("cannot list methods: "+m.err.Error()))
	case !m.loaded:
		lines = append(lines, m.Styles.Empty.Render("loading methods…"))
	case len(m.matches) == 0:
		lines = append(lines, m.Styles.Empty.Render("no method matches "+quote(m.input.Value())))
	}
	for i := m.offset; i < len(m.matches) && len(lines) < m.height; i++ {
		lines = append(lines, m.row(i))
	}
	return theme.FitLines(strings.Join(lines, "\n"), m.width, m.height)
}

func (m Model) row(i int) string {
	mt := m.matches[i]
	md := m.methods[mt.Index]
	matched := map[int]bool{}
	for _, j := range mt.MatchedIndexes {
		matched[j] = true
	}
	var name strings.Builder
	for j, r := range mt.Str {
		if matched[j] {
			name.WriteString(m.Styles.Match.Render(string(r)))
		} else {
			name.WriteString(m.Styles.Method.Render(string(r)))
		}
	}
	kindText := Kind(md)
	if m.isOffered(mt.Index) && m.label != "" {
		kindText += " · " + m.label
	}
	kind := m.Styles.Kind.Render(kindText)
	marker := "  "
	if i == m.cursor {
		marker = "▸ "
	}
	pad := m.width - 2 - lipgloss.Width(mt.Str) - lipgloss.Width(kind) - 1
	line := marker + name.String() + strings.Repeat(" ", max(pad, 1)) + kind
	if i == m.cursor && m.input.Focused() {
		return m.Styles.Selected.Render(theme.Fit(marker+mt.Str+strings.Repeat(" ", max(pad, 1))+kindText, m.width))
	}
	return line
}

// Kind names a method's call kind: "unary", "server stream", "client
// stream" or "bidi stream".
func Kind(md protoreflect.MethodDescriptor) string {
	switch {
	case md.IsStreamingClient() && md.IsStreamingServer():
		return "bidi stream"
	case md.IsStreamingServer():
		return "server stream"
	case md.IsStreamingClient():
		return "client stream"
	}
	return "unary"
}

func quote(s string) string { return `"` + s + `"` }
