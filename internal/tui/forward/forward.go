// Package forward is the pane that makes calls from the TUI: pick a method
// (fuzzy filter over the schema), edit the request as JSON starting from a
// template of its type, choose the deadline, send, and watch the headers,
// each response as it arrives (server streams included), the status and
// the trailers. Client and bidi streams stay open: each send sends the
// editor's messages, and a key ends sending, as evans does. Every call is
// kept in a history, to be read again, edited and sent anew; several can
// be in flight at once.
//
// The same pane makes forward calls to the upstream (bcctl connect/call)
// and reverse calls into a peer's backchannel (bcctl serve): what it calls
// is an Invoker. Calls run in tea.Cmds; the screen never waits on the
// network.
package forward

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/tui/editor"
	"github.com/bcctl/bcctl/internal/tui/history"
	"github.com/bcctl/bcctl/internal/tui/msgview"
	"github.com/bcctl/bcctl/internal/tui/picker"
	"github.com/bcctl/bcctl/internal/tui/theme"
)

// Config says what the pane calls.
type Config struct {
	// Source lists the methods and resolves types. Required.
	Source dynamic.Source
	// Invoker makes the calls. Required.
	Invoker Invoker
	// Headers start the metadata line, which is sent with every call and
	// can be edited in the pane (the -H and --rpc-header flags).
	Headers metadata.MD
	// Target names what is called, for titles and the history
	// ("127.0.0.1:9000", "peer 3").
	Target string
	// Timeout starts the deadline field: each call must end within it.
	// Zero means no deadline.
	Timeout time.Duration
	// Now is the clock of the history; nil means time.Now.
	Now func() time.Time
	// Bytes says how bytes fields of the messages are shown ("" is
	// base64; dynamic.BytesText shows UTF-8 bytes as text). Requests are
	// written as protobuf JSON all the same.
	Bytes dynamic.BytesMode
}

// KeyMap are the pane's keys.
type KeyMap struct {
	Send, EndSend, Cancel, Pick, History, Edit, Leave, NextPart key.Binding
}

// DefaultKeyMap returns the pane's default keys.
func DefaultKeyMap() KeyMap {
	return KeyMap{
		Send:     key.NewBinding(key.WithKeys("ctrl+s"), key.WithHelp("ctrl+s", "send")),
		EndSend:  key.NewBinding(key.WithKeys("ctrl+o"), key.WithHelp("ctrl+o", "end sending")),
		Cancel:   key.NewBinding(key.WithKeys("ctrl+g"), key.WithHelp("ctrl+g", "cancel call")),
		Pick:     key.NewBinding(key.WithKeys("ctrl+l"), key.WithHelp("ctrl+l", "pick method")),
		History:  key.NewBinding(key.WithKeys("ctrl+r"), key.WithHelp("ctrl+r", "calls made")),
		Edit:     key.NewBinding(key.WithKeys("enter", "i"), key.WithHelp("enter", "edit request")),
		Leave:    key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "stop editing")),
		NextPart: key.NewBinding(key.WithKeys("tab"), key.WithHelp("tab", "request/metadata/deadline/response")),
	}
}

// Styles are the pane's styles.
type Styles struct {
	Method, Kind, Hint, Running, OK, Error lipgloss.Style
}

// DefaultStyles returns the pane's styles in th.
func DefaultStyles(th theme.Theme) Styles {
	return Styles{Method: th.Accent, Kind: th.Muted, Hint: th.Muted, Running: th.Warn, OK: th.OK, Error: th.Error}
}

// Focus is the part of the pane that takes keys.
type Focus int

// The parts of the pane.
const (
	FocusPicker Focus = iota
	FocusEditor
	FocusMetadata
	FocusDeadline
	FocusResponse
	FocusHistory
)

// Model is the pane.
type Model struct {
	KeyMap KeyMap
	Styles Styles

	cfg      Config
	th       theme.Theme
	picker   picker.Model
	history  history.Model
	editor   editor.Model
	meta     textinput.Model
	deadline textinput.Model
	resp     msgview.Model
	method   protoreflect.MethodDescriptor
	focus    Focus
	back     Focus // where esc from the picker or the history goes
	active   bool  // the pane takes keys at all
	width    int
	height   int

	calls   map[int]*call // every call made, by ID
	lastID  int
	shown   int // the call the response view shows; 0 for none
	flights *flights
}

// New returns a pane over cfg styled by th. Call Init to load the methods.
func New(cfg Config, th theme.Theme) Model {
	meta := th.Input("metadata › ", th.Muted, "none (write name: value; name2: value)")
	meta.SetValue(FormatHeaders(cfg.Headers))
	dl := th.Input("deadline › ", th.Muted, "none")
	dl.SetValue(FormatTimeout(cfg.Timeout))
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m := Model{
		KeyMap: DefaultKeyMap(), Styles: DefaultStyles(th),
		cfg: cfg, th: th,
		picker: picker.New(th), history: history.New(th), editor: editor.New(th),
		meta: meta, deadline: dl, resp: msgview.New(th),
		calls: map[int]*call{}, flights: newFlights(),
	}
	m.resp.Reset(m.sections())
	return m
}

// FormatHeaders writes md as the metadata line shows it:
// "name: value; name: value", sorted by name.
func FormatHeaders(md metadata.MD) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(md)) {
		for _, v := range md[k] {
			parts = append(parts, k+": "+v)
		}
	}
	return strings.Join(parts, "; ")
}

// ParseHeaders reads the metadata line: "name: value" entries separated by
// ";".
func ParseHeaders(line string) (metadata.MD, error) {
	var entries []string
	for _, e := range strings.Split(line, ";") {
		if e = strings.TrimSpace(e); e != "" {
			entries = append(entries, e)
		}
	}
	md, err := dynamic.ParseHeaders(entries)
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	return md, nil
}

// FormatTimeout writes a deadline as the deadline field shows it: "10s",
// "1m", "1m30s", "" for none.
func FormatTimeout(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// ParseTimeout reads the deadline field: a Go duration ("30s", "2m"), or
// "" or "none" for no deadline.
func ParseTimeout(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "none" || s == "0" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("deadline %q: want a duration such as 30s or 2m, or none", s)
	}
	return d, nil
}

// SetMetadata replaces the metadata line with md.
func (m *Model) SetMetadata(md metadata.MD) { m.meta.SetValue(FormatHeaders(md)) }

// SetTimeout replaces the deadline field with d (zero for none).
func (m *Model) SetTimeout(d time.Duration) { m.deadline.SetValue(FormatTimeout(d)) }

// Init returns the tea.Cmd that loads the methods of the schema.
func (m Model) Init() tea.Cmd { return picker.Load(context.Background(), m.cfg.Source) }

// SetConfig changes what the pane calls (another peer, say). The method
// and the request stay; when the target changes, the response view no
// longer shows a call made to the old one (the history keeps it).
func (m *Model) SetConfig(cfg Config) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	changed := cfg.Target != m.cfg.Target
	m.cfg = cfg
	if changed {
		m.show(0)
	}
}

// Config returns what the pane calls.
func (m Model) Config() Config { return m.cfg }

// Method returns the picked method, nil before one is picked.
func (m Model) Method() protoreflect.MethodDescriptor { return m.method }

// Running reports whether the call shown is in flight.
func (m Model) Running() bool {
	c := m.calls[m.shown]
	return c != nil && c.running
}

// InFlight returns the number of calls in flight.
func (m Model) InFlight() int {
	n := 0
	for _, c := range m.calls {
		if c.running {
			n++
		}
	}
	return n
}

// FocusedPart returns the part of the pane that takes keys.
func (m Model) FocusedPart() Focus { return m.focus }

// Editing reports whether typed letters go into a text field (the
// filter, the editor, the metadata or deadline line), so a program's
// single-letter keys must not act.
func (m Model) Editing() bool {
	return m.active && (m.focus == FocusPicker || m.focus == FocusEditor || m.focus == FocusMetadata || m.focus == FocusDeadline)
}

// SetMethods sets the methods to pick from (instead of Init's loading).
func (m *Model) SetMethods(methods []protoreflect.MethodDescriptor) { m.picker.SetMethods(methods) }

// SetOffered lists the methods the called side says it offers (by
// reflection) first in the picker, marked with label.
func (m *Model) SetOffered(methods []protoreflect.MethodDescriptor, label string) {
	m.picker.SetOffered(methods, label)
}

// Picker returns the method picker (tests, filter text).
func (m Model) Picker() picker.Model { return m.picker }

// History returns the list of calls made (tests).
func (m Model) History() history.Model { return m.history }

// Response returns the response view (tests).
func (m Model) Response() msgview.Model { return m.resp }

// SetRequest replaces the request text.
func (m *Model) SetRequest(s string) { m.editor.SetValue(s) }

// Request returns the request text.
func (m Model) Request() string { return m.editor.Value() }

// Activate gives the pane the keys, with focus on its current part.
func (m *Model) Activate() tea.Cmd {
	m.active = true
	return m.setFocus(m.focus)
}

// Deactivate takes the keys away.
func (m *Model) Deactivate() {
	m.active = false
	m.blurAll()
}

func (m *Model) blurAll() {
	m.picker.Blur()
	m.history.Blur()
	m.editor.Blur()
	m.meta.Blur()
	m.deadline.Blur()
	m.resp.Blur()
}

func (m *Model) setFocus(f Focus) tea.Cmd {
	if f != FocusPicker && f != FocusHistory && m.method == nil {
		f = FocusPicker
	}
	m.focus = f
	m.blurAll()
	if !m.active {
		return nil
	}
	switch f {
	case FocusPicker:
		return m.picker.Focus()
	case FocusHistory:
		m.history.Focus()
	case FocusEditor:
		return m.editor.Focus()
	case FocusMetadata:
		return m.meta.Focus()
	case FocusDeadline:
		return m.deadline.Focus()
	default:
		m.resp.Focus()
	}
	return nil
}

// Pick chooses md as if picked: the editor gets its request template.
func (m *Model) Pick(md protoreflect.MethodDescriptor) tea.Cmd {
	m.method = md
	tmpl, err := dynamic.TemplateJSON(md.Input(), true)
	if err != nil {
		tmpl = "{}"
	}
	m.editor.SetValue(tmpl)
	m.show(0)
	m.layout()
	return m.setFocus(FocusEditor)
}

// OpenPicker opens the method picker with an empty filter and the method
// chosen last highlighted; esc goes back to where the keys were.
func (m *Model) OpenPicker() tea.Cmd {
	m.remember()
	cmd := m.setFocus(FocusPicker)
	m.picker.Open(m.method)
	return cmd
}

// OpenHistory shows the calls made, the one shown selected; esc goes
// back to where the keys were.
func (m *Model) OpenHistory() tea.Cmd {
	m.remember()
	m.history.Select(m.shown)
	return m.setFocus(FocusHistory)
}

// remember notes the part to go back to from the picker or the history.
func (m *Model) remember() {
	if m.focus != FocusPicker && m.focus != FocusHistory {
		m.back = m.focus
	}
}

// goBack leaves the picker or the history for where the keys were.
func (m *Model) goBack() tea.Cmd {
	back := m.back
	if back == FocusPicker || back == FocusHistory {
		back = FocusEditor
	}
	return m.setFocus(back)
}

// SetSize sets the pane's size in cells.
func (m *Model) SetSize(width, height int) {
	m.width, m.height = width, height
	m.layout()
}

// Layout of the pane: a line for the method, one for the metadata and
// deadline, one for the hints; then the editor and the response side by
// side (stacked when narrow).
const (
	headLines  = 3
	sideBySide = 90
	deadlineW  = 8 // cells for the deadline's value
)

// deadlineWidth is the width of the deadline field, prompt included.
func (m Model) deadlineWidth() int { return lipgloss.Width(m.deadline.Prompt) + deadlineW + 1 }

func (m *Model) layout() {
	m.picker.SetSize(m.width, m.height)
	m.history.SetSize(m.width, m.height)
	m.deadline.Width = deadlineW
	m.meta.Width = max(m.width-m.deadlineWidth()-1-lipgloss.Width(m.meta.Prompt)-1, 1)
	body := max(m.height-headLines, 1)
	if m.width >= sideBySide {
		left := m.width / 2
		m.editor.SetSize(left-1, body)
		m.resp.SetSize(m.width-left-2, body)
		return
	}
	top := body / 2
	m.editor.SetSize(m.width, top)
	m.resp.SetSize(m.width, body-top-1)
}
