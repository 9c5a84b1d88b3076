// Package msgview shows messages and metadata as titled sections of pretty
// JSON in a scrolling viewport: the request and metadata of a reverse call,
// the headers, responses, status and trailers of a forward call.
package msgview

import (
	"strings"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/viewport"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/tui/theme"
)

// Section is one titled block of the view.
type Section struct {
	Title string
	Body  string
	// Tone colors the body: "" plain, "ok", "error", "muted".
	Tone string
}

// Styles are the view's styles.
type Styles struct {
	Title, Body, OK, Error, Muted lipgloss.Style
}

// DefaultStyles returns the view's styles in th.
func DefaultStyles(th theme.Theme) Styles {
	return Styles{Title: th.Accent, Body: th.Text, OK: th.OK, Error: th.Error, Muted: th.Muted}
}

// KeyMap are the keys that scroll the view (when focused).
type KeyMap = viewport.KeyMap

// DefaultKeyMap returns the viewport's keys without the letters that other
// panes use (f, b, d, u), so only arrows, j/k and the page keys scroll.
func DefaultKeyMap() KeyMap {
	km := viewport.DefaultKeyMap()
	km.PageDown = key.NewBinding(key.WithKeys("pgdown", " "), key.WithHelp("pgdn", "page down"))
	km.PageUp = key.NewBinding(key.WithKeys("pgup"), key.WithHelp("pgup", "page up"))
	km.HalfPageDown = key.NewBinding(key.WithKeys("ctrl+d"), key.WithHelp("ctrl+d", "½ page down"))
	km.HalfPageUp = key.NewBinding(key.WithKeys("ctrl+u"), key.WithHelp("ctrl+u", "½ page up"))
	return km
}

// Model is the view.
type Model struct {
	Styles Styles

	vp       viewport.Model
	sections []Section
	focused  bool
	// follow keeps the view at the bottom as sections grow (streams), until
	// the user scrolls up.
	follow bool
}

// New returns an empty view styled by th.
func New(th theme.Theme) Model {
	vp := viewport.New(0, 0)
	vp.KeyMap = DefaultKeyMap()
	return Model{Styles: DefaultStyles(th), vp: vp, follow: true}
}

// SetSize sets the view's size in cells.
func (m *Model) SetSize(width, height int) {
	m.vp.Width, m.vp.Height = width, height
	m.render()
}

// SetSections replaces what the view shows. The scroll position is kept,
// and a view scrolled to the bottom stays there as content is added.
func (m *Model) SetSections(sections []Section) {
	m.sections = sections
	m.render()
}

// Reset shows sections from the top (another call was selected).
func (m *Model) Reset(sections []Section) {
	m.sections = sections
	m.follow = false
	m.render()
	m.vp.GotoTop()
}

// Follow makes the view stick to the bottom as content grows.
func (m *Model) Follow() {
	m.follow = true
	m.vp.GotoBottom()
}

// Focus lets keys scroll the view.
func (m *Model) Focus() { m.focused = true }

// Blur stops keys from scrolling the view.
func (m *Model) Blur() { m.focused = false }

// Focused reports whether keys scroll the view.
func (m Model) Focused() bool { return m.focused }

// KeyMap returns the scrolling keys, for help.
func (m Model) KeyMap() KeyMap { return m.vp.KeyMap }

// Content returns the rendered text of every section (tests, copying).
func (m Model) Content() string { return m.content(m.vp.Width) }

func (m *Model) render() {
	at := m.vp.AtBottom()
	m.vp.SetContent(m.content(m.vp.Width))
	if m.follow && at {
		m.vp.GotoBottom()
	}
}

func (m Model) content(width int) string {
	var b strings.Builder
	for i, s := range m.sections {
		if i > 0 {
			b.WriteByte('\n')
		}
		if s.Title != "" {
			b.WriteString(m.Styles.Title.Render(s.Title))
			b.WriteByte('\n')
		}
		style := m.Styles.Body
		switch s.Tone {
		case "ok":
			style = m.Styles.OK
		case "error":
			style = m.Styles.Error
		case "muted":
			style = m.Styles.Muted
		}
		body := s.Body
		if width > 0 {
			body = ansi.Wrap(body, width, "")
		}
		for _, line := range strings.Split(body, "\n") {
			b.WriteString(style.Render(line))
			b.WriteByte('\n')
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

// Update scrolls on keys when focused.
func (m Model) Update(msg tea.Msg) (Model, tea.Cmd) {
	if _, ok := msg.(tea.KeyMsg); ok && !m.focused {
		return m, nil
	}
	var cmd tea.Cmd
	m.vp, cmd = m.vp.Update(msg)
	if _, ok := msg.(tea.KeyMsg); ok {
		m.follow = m.vp.AtBottom()
	}
	return m, cmd
}

// View renders the visible part, exactly the view's size.
func (m Model) View() string {
	return theme.FitLines(m.vp.View(), m.vp.Width, m.vp.Height)
}

// JSON renders msg as indented JSON with proto field names and every field
// shown, as a person reading a call wants it; bytes fields as bytes says
// (dynamic.BytesText for --bytes text).
func JSON(msg proto.Message, resolver dynamic.TypeResolver, bytes dynamic.BytesMode) string {
	f, err := dynamic.NewFormatter(dynamic.FormatJSON, resolver, dynamic.FormatOptions{EmitDefaults: true, ProtoNames: true, Bytes: bytes})
	if err != nil {
		return "cannot render: " + err.Error()
	}
	s, err := f(msg)
	if err != nil {
		return "cannot render: " + err.Error()
	}
	return s
}

// Metadata renders md one "name: value" per line, "(none)" when empty.
func Metadata(md metadata.MD) string {
	if len(md) == 0 {
		return "(none)"
	}
	return strings.TrimRight(dynamic.FormatMetadata(md), "\n")
}

// Status renders a status: "OK", or the code, message and details.
func Status(st *status.Status, resolver dynamic.TypeResolver) string {
	if st == nil {
		return ""
	}
	s := calls.CodeName(st.Code())
	if st.Message() != "" {
		s += ": " + st.Message()
	}
	for _, d := range dynamic.StatusDetailsJSON(st, resolver, dynamic.FormatOptions{ProtoNames: true}) {
		s += "\n" + d
	}
	return s
}

// StatusTone is the tone of a status section.
func StatusTone(st *status.Status) string {
	if st == nil {
		return ""
	}
	if st.Code() == 0 {
		return "ok"
	}
	return "error"
}
