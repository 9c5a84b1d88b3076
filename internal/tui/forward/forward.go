// Package forward is the pane that makes calls from the TUI: pick a method
// (fuzzy filter over the schema), edit the request as JSON starting from a
// template of its type, send, and watch the headers, each response as it
// arrives (server streams included), the status and the trailers.
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
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/tui/editor"
	"github.com/bcctl/bcctl/internal/tui/internal/mailbox"
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
	// Target names what is called, for the pane's title ("127.0.0.1:9000",
	// "peer 3").
	Target string
}

// KeyMap are the pane's keys.
type KeyMap struct {
	Send, Cancel, Pick, Edit, Leave, NextPart key.Binding
}

// DefaultKeyMap returns the pane's default keys.
func DefaultKeyMap() KeyMap {
	return KeyMap{
		Send:     key.NewBinding(key.WithKeys("ctrl+s"), key.WithHelp("ctrl+s", "send")),
		Cancel:   key.NewBinding(key.WithKeys("ctrl+g"), key.WithHelp("ctrl+g", "cancel call")),
		Pick:     key.NewBinding(key.WithKeys("ctrl+l"), key.WithHelp("ctrl+l", "pick method")),
		Edit:     key.NewBinding(key.WithKeys("enter", "i"), key.WithHelp("enter", "edit request")),
		Leave:    key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "stop editing")),
		NextPart: key.NewBinding(key.WithKeys("tab"), key.WithHelp("tab", "request/metadata/response")),
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
	FocusResponse
)

// Model is the pane.
type Model struct {
	KeyMap KeyMap
	Styles Styles

	cfg     Config
	th      theme.Theme
	picker  picker.Model
	editor  editor.Model
	meta    textinput.Model
	resp    msgview.Model
	method  protoreflect.MethodDescriptor
	focus   Focus
	back    Focus // where esc from the picker goes
	active  bool  // the pane takes keys at all
	width   int
	height  int
	runs    int
	current *run
	result  callResult
	flights *flights
}

// callResult is what the current (or last) call got.
type callResult struct {
	requests  []proto.Message
	sentMD    metadata.MD
	header    metadata.MD
	responses []proto.Message
	status    *status.Status
	trailer   metadata.MD
	elapsed   time.Duration
	failed    error
	running   bool
}

// New returns a pane over cfg styled by th. Call Init to load the methods.
func New(cfg Config, th theme.Theme) Model {
	meta := textinput.New()
	meta.Prompt = "metadata › "
	meta.PromptStyle = th.Muted
	meta.Placeholder = "none (write name: value; name2: value)"
	meta.PlaceholderStyle = th.Muted
	meta.TextStyle = th.Text
	meta.Cursor.Style = th.Selected
	meta.SetValue(FormatHeaders(cfg.Headers))
	return Model{
		KeyMap: DefaultKeyMap(), Styles: DefaultStyles(th),
		cfg: cfg, th: th,
		picker: picker.New(th), editor: editor.New(th), meta: meta, resp: msgview.New(th),
		flights: &flights{runs: map[*run]struct{}{}},
	}
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

// SetMetadata replaces the metadata line with md.
func (m *Model) SetMetadata(md metadata.MD) { m.meta.SetValue(FormatHeaders(md)) }

// Init returns the tea.Cmd that loads the methods of the schema.
func (m Model) Init() tea.Cmd { return picker.Load(context.Background(), m.cfg.Source) }

// SetConfig changes what the pane calls (another peer, say); the method
// and the request stay.
func (m *Model) SetConfig(cfg Config) { m.cfg = cfg }

// Config returns what the pane calls.
func (m Model) Config() Config { return m.cfg }

// Method returns the picked method, nil before one is picked.
func (m Model) Method() protoreflect.MethodDescriptor { return m.method }

// Running reports whether a call is in flight.
func (m Model) Running() bool { return m.result.running }

// FocusedPart returns the part of the pane that takes keys.
func (m Model) FocusedPart() Focus { return m.focus }

// Editing reports whether typed letters go into a text field (the
// filter or the editor), so a program's single-letter keys must not act.
func (m Model) Editing() bool {
	return m.active && (m.focus == FocusPicker || m.focus == FocusEditor || m.focus == FocusMetadata)
}

// SetMethods sets the methods to pick from (instead of Init's loading).
func (m *Model) SetMethods(methods []protoreflect.MethodDescriptor) { m.picker.SetMethods(methods) }

// Picker returns the method picker (tests, filter text).
func (m Model) Picker() picker.Model { return m.picker }

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
	m.picker.Blur()
	m.editor.Blur()
	m.meta.Blur()
	m.resp.Blur()
}

func (m *Model) setFocus(f Focus) tea.Cmd {
	if f != FocusPicker && m.method == nil {
		f = FocusPicker
	}
	m.focus = f
	m.picker.Blur()
	m.editor.Blur()
	m.meta.Blur()
	m.resp.Blur()
	if !m.active {
		return nil
	}
	switch f {
	case FocusPicker:
		return m.picker.Focus()
	case FocusEditor:
		return m.editor.Focus()
	case FocusMetadata:
		return m.meta.Focus()
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
	m.result = callResult{}
	m.resp.Reset(m.sections())
	m.layout()
	return m.setFocus(FocusEditor)
}

// SetSize sets the pane's size in cells.
func (m *Model) SetSize(width, height int) {
	m.width, m.height = width, height
	m.layout()
}

// layout sizes the parts: the picker takes the whole pane; otherwise the
// editor and the response share it side by side (stacked when narrow).
func (m *Model) layout() {
	m.picker.SetSize(m.width, m.height)
	m.meta.Width = max(m.width-len(m.meta.Prompt)-2, 1)
	body := max(m.height-3, 1) // method, metadata and hint lines
	if m.width >= 90 {
		left := m.width / 2
		m.editor.SetSize(left-1, body)
		m.resp.SetSize(m.width-left-2, body)
		return
	}
	top := body / 2
	m.editor.SetSize(m.width, top)
	m.resp.SetSize(m.width, body-top-1)
}

// Send returns the tea.Cmd that makes the call with the editor's request.
func (m *Model) Send() tea.Cmd {
	if m.method == nil || m.result.running {
		return nil
	}
	headers, err := ParseHeaders(m.meta.Value())
	if err != nil {
		m.editor.SetError(err)
		return nil
	}
	m.runs++
	ctx, cancel := context.WithCancel(context.Background())
	r := &run{id: m.runs, box: mailbox.New(), cancel: cancel, done: make(chan struct{})}
	m.current = r
	m.result = callResult{running: true, sentMD: headers}
	m.resp.Reset(m.sections())
	if m.method.IsStreamingServer() {
		m.resp.Follow() // keep the newest message in view
	}
	return start(ctx, r, m.flights, m.cfg.Invoker, m.method, headers, m.editor.Value(), m.cfg.Source.Types())
}

// InFlight returns the number of calls in flight.
func (m Model) InFlight() int {
	if m.result.running {
		return 1
	}
	return 0
}

// Stop cancels every call in flight and waits, until ctx is done, for
// each to end: an Invoker that observes its calls (Observed) has reported
// them when Stop returns. Calls sent afterwards do not start. Programs
// call it once they have quit.
func (m Model) Stop(ctx context.Context) {
	if m.flights != nil {
		m.flights.stop(ctx)
	}
}

// Cancel cancels the call in flight.
func (m *Model) Cancel() {
	if m.current != nil && m.result.running {
		m.current.cancel()
	}
}

// Update handles keys (when active) and the events of the call in flight.
func (m Model) Update(msg tea.Msg) (Model, tea.Cmd) {
	switch msg := msg.(type) {
	case picker.LoadedMsg:
		m.picker, _ = m.picker.Update(msg)
		return m, nil
	case picker.PickedMsg:
		return m, m.Pick(msg.Method)
	case RequestErrorMsg:
		if m.current != nil && msg.Run == m.current.id {
			m.result.running = false
			m.current.cancel()
			m.editor.SetError(msg.Err)
			m.resp.Reset(m.sections())
			return m, m.setFocus(FocusEditor)
		}
		return m, nil
	case StartedMsg:
		return m.event(msg.Run, func(m *Model) { m.result.requests, m.result.sentMD = msg.Requests, msg.Headers })
	case HeaderMsg:
		return m.event(msg.Run, func(m *Model) { m.result.header = msg.MD })
	case ResponseMsg:
		return m.event(msg.Run, func(m *Model) { m.result.responses = append(m.result.responses, msg.Msg) })
	case TrailerMsg:
		return m.event(msg.Run, func(m *Model) {
			m.result.status, m.result.trailer, m.result.elapsed = msg.Status, msg.MD, msg.Elapsed
			m.result.running = false
		})
	case FailedMsg:
		return m.event(msg.Run, func(m *Model) { m.result.failed, m.result.running = msg.Err, false })
	case runDoneMsg:
		if m.current != nil && msg.Run == m.current.id {
			m.current.cancel()
			m.result.running = false
		}
		return m, nil
	case tea.KeyMsg:
		if !m.active {
			return m, nil
		}
		return m.key(msg)
	}
	return m, nil
}

// event applies an event of run id and waits for the next one.
func (m Model) event(id int, apply func(*Model)) (Model, tea.Cmd) {
	if m.current == nil || id != m.current.id {
		return m, nil
	}
	apply(&m)
	m.resp.SetSections(m.sections())
	return m, m.current.next()
}

func (m Model) key(msg tea.KeyMsg) (Model, tea.Cmd) {
	if m.focus == FocusPicker {
		// In the picker, keys only pick: nothing is sent or cancelled
		// from behind it.
		if key.Matches(msg, m.KeyMap.Leave) && m.method != nil {
			back := m.back
			if back == FocusPicker {
				back = FocusEditor
			}
			return m, m.setFocus(back)
		}
		var cmd tea.Cmd
		m.picker, cmd = m.picker.Update(msg)
		return m, cmd
	}
	switch {
	case key.Matches(msg, m.KeyMap.Send):
		return m, m.Send()
	case key.Matches(msg, m.KeyMap.Cancel):
		m.Cancel()
		return m, nil
	case key.Matches(msg, m.KeyMap.Pick):
		return m, m.OpenPicker()
	case key.Matches(msg, m.KeyMap.NextPart):
		next := map[Focus]Focus{FocusEditor: FocusMetadata, FocusMetadata: FocusResponse, FocusResponse: FocusEditor}
		return m, m.setFocus(next[m.focus])
	case m.focus != FocusResponse && key.Matches(msg, m.KeyMap.Leave):
		return m, m.setFocus(FocusResponse)
	case m.focus == FocusResponse && key.Matches(msg, m.KeyMap.Edit):
		return m, m.setFocus(FocusEditor)
	}
	var cmd tea.Cmd
	switch m.focus {
	case FocusEditor:
		m.editor, cmd = m.editor.Update(msg)
	case FocusMetadata:
		if msg.Type == tea.KeyEnter {
			return m, m.setFocus(FocusEditor)
		}
		m.meta, cmd = m.meta.Update(msg)
	default:
		m.resp, cmd = m.resp.Update(msg)
	}
	return m, cmd
}

// OpenPicker opens the method picker with an empty filter and the method
// chosen last highlighted; esc goes back to where the keys were.
func (m *Model) OpenPicker() tea.Cmd {
	if m.focus != FocusPicker {
		m.back = m.focus
	}
	cmd := m.setFocus(FocusPicker)
	m.picker.Open(m.method)
	return cmd
}

// ShortHelp returns the keys that act in the focused part, for a help
// bar.
func (m Model) ShortHelp() []key.Binding {
	k := m.KeyMap
	if m.focus == FocusPicker {
		p := m.picker.KeyMap
		out := []key.Binding{
			key.NewBinding(key.WithKeys("up", "down"), key.WithHelp("↑/↓", "select method")),
			p.Pick,
			key.NewBinding(key.WithKeys(""), key.WithHelp("type", "to filter")),
		}
		if m.method != nil {
			out = append(out, key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "back to the request")))
		}
		return out
	}
	out := []key.Binding{k.Send}
	if m.result.running {
		out = append(out, k.Cancel)
	}
	out = append(out, k.Pick, k.NextPart)
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
	if m.focus == FocusPicker {
		p := m.picker.KeyMap
		leave := key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "back to the request"))
		return [][]key.Binding{{p.Up, p.Down, p.Pick, leave}}
	}
	return [][]key.Binding{{k.Send, k.Cancel, k.Pick}, {k.Edit, k.NextPart, k.Leave}}
}

// sections renders the call's outcome for the response view.
func (m Model) sections() []msgview.Section {
	r := m.result
	types := m.cfg.Source.Types()
	var out []msgview.Section
	if r.failed != nil {
		out = append(out, msgview.Section{Title: "Could not call", Body: r.failed.Error(), Tone: "error"})
	}
	if r.header != nil {
		out = append(out, msgview.Section{Title: "Response headers", Body: msgview.Metadata(r.header)})
	}
	for i, msg := range r.responses {
		title := "Response"
		if m.method != nil && m.method.IsStreamingServer() {
			title = fmt.Sprintf("Response %d", i+1)
		}
		out = append(out, msgview.Section{Title: title, Body: msgview.JSON(msg, types)})
	}
	if r.running {
		out = append(out, msgview.Section{Title: "Status", Body: "waiting for the call to end…", Tone: "muted"})
	}
	if r.status != nil {
		out = append(out, msgview.Section{
			Title: fmt.Sprintf("Status (%s)", r.elapsed.Round(time.Millisecond)),
			Body:  msgview.Status(r.status, types), Tone: msgview.StatusTone(r.status),
		})
	}
	if r.trailer != nil {
		out = append(out, msgview.Section{Title: "Trailers", Body: msgview.Metadata(r.trailer)})
	}
	if len(out) == 0 {
		out = append(out, msgview.Section{Title: "Response", Body: "nothing sent yet", Tone: "muted"})
	}
	return out
}

// View renders the pane, exactly its size.
func (m Model) View() string {
	if m.width <= 0 || m.height <= 0 {
		return ""
	}
	if m.focus == FocusPicker || m.method == nil {
		return m.picker.View()
	}
	head := m.Styles.Method.Render(dynamic.MethodName(m.method)) + " " +
		m.Styles.Kind.Render("("+picker.Kind(m.method)+", "+string(m.method.Input().FullName())+" → "+string(m.method.Output().FullName())+")")
	state := ""
	switch {
	case m.result.running:
		state = m.Styles.Running.Render("calling…")
	case m.result.status != nil && m.result.status.Code() == 0:
		state = m.Styles.OK.Render("OK")
	case m.result.status != nil || m.result.failed != nil:
		state = m.Styles.Error.Render("failed")
	}
	hint := "request (JSON)"
	if m.method.IsStreamingClient() {
		hint = "requests: JSON values one after another"
	}
	var body string
	if m.width >= 90 {
		left := m.width / 2
		body = lipgloss.JoinHorizontal(lipgloss.Top,
			theme.FitLines(m.editor.View(), left-1, m.height-3),
			strings.TrimSuffix(strings.Repeat(" │\n", max(m.height-3, 1)), "\n"),
			theme.FitLines(m.resp.View(), m.width-left-2, m.height-3))
		hint = theme.Fit(m.Styles.Hint.Render(hint), left) + state
	} else {
		body = m.editor.View() + "\n" + m.Styles.Hint.Render("──") + " " + state + "\n" + m.resp.View()
		hint = m.Styles.Hint.Render(hint)
	}
	return theme.FitLines(head+"\n"+m.meta.View()+"\n"+hint+"\n"+body, m.width, m.height)
}
