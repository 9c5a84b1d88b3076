// Package journalview shows the journal as it is written: one line per
// finished call (time, direction, peer, method, status, duration, rule),
// a filter, and the selected entry in full.
package journalview

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/bcctl/bcctl/internal/journal"
	"github.com/bcctl/bcctl/internal/tui/msgview"
	"github.com/bcctl/bcctl/internal/tui/theme"
)

// KeyMap are the view's keys.
type KeyMap struct {
	Up, Down, First, Last, Filter, ClearFilter, Details key.Binding
}

// DefaultKeyMap returns the view's default keys.
func DefaultKeyMap() KeyMap {
	return KeyMap{
		Up:          key.NewBinding(key.WithKeys("up", "k"), key.WithHelp("↑/k", "previous entry")),
		Down:        key.NewBinding(key.WithKeys("down", "j"), key.WithHelp("↓/j", "next entry")),
		First:       key.NewBinding(key.WithKeys("home", "g"), key.WithHelp("g", "first entry")),
		Last:        key.NewBinding(key.WithKeys("end", "G"), key.WithHelp("G", "last entry, follow")),
		Filter:      key.NewBinding(key.WithKeys("/"), key.WithHelp("/", "filter")),
		ClearFilter: key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "clear filter")),
		Details:     key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "show entry")),
	}
}

// Styles are the view's styles.
type Styles struct {
	Time, Text, OK, Error, Muted, Selected, Filter lipgloss.Style
}

// DefaultStyles returns the view's styles in th.
func DefaultStyles(th theme.Theme) Styles {
	return Styles{Time: th.Muted, Text: th.Text, OK: th.OK, Error: th.Error, Muted: th.Muted, Selected: th.Selected, Filter: th.Accent}
}

// Model is the view.
type Model struct {
	KeyMap KeyMap
	Styles Styles
	// Location is the time zone times are shown in (time.Local by
	// default).
	Location *time.Location

	entries []journal.Entry
	shown   []int // indexes of entries that pass the filter
	cursor  int   // index in shown
	offset  int
	follow  bool // keep the newest entry selected
	filter  textinput.Model
	details bool
	detail  msgview.Model
	width   int
	height  int
	focused bool
}

// New returns an empty view styled by th.
func New(th theme.Theme) Model {
	ti := th.Input("/", th.Accent, `words that must all appear: vote reverse ABORTED "peer 3"`)
	return Model{KeyMap: DefaultKeyMap(), Styles: DefaultStyles(th), Location: time.Local, filter: ti, follow: true, detail: msgview.New(th)}
}

// Add appends entries (in journal order).
func (m *Model) Add(entries ...journal.Entry) {
	for _, e := range entries {
		m.entries = append(m.entries, e)
		if m.matches(e) {
			m.shown = append(m.shown, len(m.entries)-1)
		}
	}
	if m.follow {
		m.cursor = len(m.shown) - 1
	}
	m.clamp()
}

// Entries returns every entry, in journal order.
func (m Model) Entries() []journal.Entry { return m.entries }

// Len returns the number of entries, and how many pass the filter.
func (m Model) Len() (all, shown int) { return len(m.entries), len(m.shown) }

// SetFilter sets the filter text.
func (m *Model) SetFilter(s string) {
	m.filter.SetValue(s)
	m.refilter()
}

// Filter returns the filter text.
func (m Model) Filter() string { return m.filter.Value() }

// Filtering reports whether the filter line takes the keys.
func (m Model) Filtering() bool { return m.filter.Focused() }

// Selected returns the selected entry.
func (m Model) Selected() (journal.Entry, bool) {
	if m.cursor < 0 || m.cursor >= len(m.shown) {
		return journal.Entry{}, false
	}
	return m.entries[m.shown[m.cursor]], true
}

// Focus lets keys move the selection.
func (m *Model) Focus() { m.focused = true }

// Blur stops keys, and leaves the filter line.
func (m *Model) Blur() {
	m.focused = false
	m.filter.Blur()
}

// SetSize sets the view's size in cells.
func (m *Model) SetSize(width, height int) {
	m.width, m.height = width, height
	m.filter.Width = max(width-2, 1)
	m.detail.SetSize(width, m.detailHeight())
	m.clamp()
}

func (m Model) detailHeight() int {
	if !m.details {
		return 0
	}
	return max((m.height-1)/2, 3)
}

func (m Model) listHeight() int {
	h := m.height - 1 // the filter line
	if m.details {
		h -= m.detailHeight() + 1
	}
	return max(h, 1)
}

// Update handles keys (when focused).
func (m Model) Update(msg tea.Msg) (Model, tea.Cmd) {
	km, ok := msg.(tea.KeyMsg)
	if !ok || !m.focused {
		return m, nil
	}
	if m.filter.Focused() {
		switch km.Type {
		case tea.KeyEnter:
			m.filter.Blur()
			return m, nil
		case tea.KeyEsc:
			m.filter.Blur()
			m.SetFilter("")
			return m, nil
		}
		before := m.filter.Value()
		var cmd tea.Cmd
		m.filter, cmd = m.filter.Update(msg)
		if m.filter.Value() != before {
			m.refilter()
		}
		return m, cmd
	}
	switch {
	case key.Matches(km, m.KeyMap.Filter):
		return m, m.filter.Focus()
	case key.Matches(km, m.KeyMap.ClearFilter):
		if m.details {
			m.details = false
		} else {
			m.SetFilter("")
		}
	case key.Matches(km, m.KeyMap.Up):
		m.cursor--
		m.follow = false
	case key.Matches(km, m.KeyMap.Down):
		m.cursor++
		m.follow = m.cursor >= len(m.shown)-1
	case key.Matches(km, m.KeyMap.First):
		m.cursor, m.follow = 0, false
	case key.Matches(km, m.KeyMap.Last):
		m.cursor, m.follow = len(m.shown)-1, true
	case key.Matches(km, m.KeyMap.Details):
		m.details = !m.details
	default:
		if m.details {
			var cmd tea.Cmd
			m.detail.Focus()
			m.detail, cmd = m.detail.Update(msg)
			return m, cmd
		}
	}
	m.clamp()
	m.detail.SetSize(m.width, m.detailHeight())
	return m, nil
}

func (m *Model) refilter() {
	var selected = -1
	if m.cursor >= 0 && m.cursor < len(m.shown) {
		selected = m.shown[m.cursor]
	}
	m.shown = m.shown[:0]
	m.cursor = -1
	for i, e := range m.entries {
		if m.matches(e) {
			if i == selected {
				m.cursor = len(m.shown)
			}
			m.shown = append(m.shown, i)
		}
	}
	if m.cursor < 0 || m.follow {
		m.cursor = len(m.shown) - 1
	}
	m.clamp()
}

func (m *Model) clamp() {
	if m.cursor >= len(m.shown) {
		m.cursor = len(m.shown) - 1
	}
	if m.cursor < 0 {
		m.cursor = 0
	}
	rows := m.listHeight()
	if m.cursor < m.offset {
		m.offset = m.cursor
	}
	if m.cursor >= m.offset+rows {
		m.offset = m.cursor - rows + 1
	}
	if m.offset > max(len(m.shown)-rows, 0) {
		m.offset = max(len(m.shown)-rows, 0)
	}
	if e, ok := m.Selected(); ok && m.details {
		m.detail.Reset(Sections(e, m.Location))
	}
}

// matches reports whether every term of the filter appears in the entry's
// text (case-insensitive).
func (m Model) matches(e journal.Entry) bool {
	terms := Terms(m.filter.Value())
	if len(terms) == 0 {
		return true
	}
	hay := strings.ToLower(Haystack(e, m.Location))
	for _, w := range terms {
		if !strings.Contains(hay, w) {
			return false
		}
	}
	return true
}

// Terms splits a filter into lower-case terms: words, or phrases in double
// quotes (`"peer 1" vote` is two terms).
func Terms(filter string) []string {
	var out []string
	for i, part := range strings.Split(strings.ToLower(filter), `"`) {
		if i%2 == 1 { // inside quotes
			if part = strings.TrimSpace(part); part != "" {
				out = append(out, part)
			}
			continue
		}
		out = append(out, strings.Fields(part)...)
	}
	return out
}

// Haystack is the text of an entry that the filter searches: its line,
// plus origin, who, address, metadata and status message.
func Haystack(e journal.Entry, loc *time.Location) string {
	var b strings.Builder
	b.WriteString(Line(e, loc))
	fmt.Fprintf(&b, " %s %s %s", e.Dir, e.Origin, e.By)
	if e.Peer != nil {
		fmt.Fprintf(&b, " %s", e.Peer.Addr)
	}
	if e.Status != nil {
		b.WriteString(" " + e.Status.Message)
	}
	for k, vs := range e.Metadata {
		b.WriteString(" " + k + ": " + strings.Join(vs, ","))
	}
	return b.String()
}

// Line renders an entry on one line, its time in loc:
//
//	14:02:11.123 fwd← peer 1  gitaly.OperationService/UserCreateBranch  OK  3.1ms  vote-before-branch
func Line(e journal.Entry, loc *time.Location) string {
	dir, peer, code, rule := parts(e)
	return fmt.Sprintf("%s %s %-7s %s  %s  %s%s", e.Time.In(loc).Format("15:04:05.000"), dir, peer, e.Method, code, formatMS(e.DurationMS), rule)
}

// parts are the short columns of an entry's line.
func parts(e journal.Entry) (dir, peer, code, rule string) {
	dir = "fwd"
	if e.Dir == journal.DirReverse {
		dir = "rev"
	}
	if e.Origin == journal.OriginMade {
		dir += "→"
	} else {
		dir += "←"
	}
	peer = "-"
	if e.Peer != nil && e.Peer.ID != 0 {
		peer = fmt.Sprintf("peer %d", e.Peer.ID)
	} else if e.Peer != nil && e.Peer.Addr != "" {
		peer = "plain"
	}
	code = "?"
	if e.Status != nil {
		code = e.Status.Code
	}
	if e.Rule != nil {
		rule = "  " + e.Rule.Name
	} else if e.By != "" && e.By != journal.ByScript {
		rule = "  by " + e.By
	}
	return dir, peer, code, rule
}

// row is Line with the method, code and duration in columns as wide as
// the longest method and code shown.
func (m Model) row(e journal.Entry, methodW, codeW int) string {
	dir, peer, code, rule := parts(e)
	return fmt.Sprintf("%s %s %-7s %-*s %-*s %7s%s", e.Time.In(m.Location).Format("15:04:05.000"), dir, peer,
		methodW, e.Method, codeW, code, formatMS(e.DurationMS), rule)
}

func formatMS(ms float64) string {
	switch {
	case ms < 10:
		return fmt.Sprintf("%.1fms", ms)
	case ms < 1000:
		return fmt.Sprintf("%.0fms", ms)
	}
	return fmt.Sprintf("%.2fs", ms/1000)
}

// Sections renders an entry in full for a msgview.
func Sections(e journal.Entry, loc *time.Location) []msgview.Section {
	head := fmt.Sprintf("#%d %s %s %s", e.ID, e.Dir, e.Origin, e.Method)
	if e.By != "" {
		head += " by " + e.By
	}
	if e.Cause != 0 {
		head += fmt.Sprintf(" (during #%d)", e.Cause)
	}
	out := []msgview.Section{{Title: head, Body: Line(e, loc), Tone: "muted"}}
	if len(e.Metadata) > 0 {
		out = append(out, msgview.Section{Title: "Metadata", Body: metadataLines(e.Metadata)})
	}
	for i, r := range e.Requests {
		out = append(out, msgview.Section{Title: fmt.Sprintf("Request %d", i+1), Body: indent(r)})
	}
	if len(e.Header) > 0 {
		out = append(out, msgview.Section{Title: "Headers", Body: metadataLines(e.Header)})
	}
	for i, r := range e.Responses {
		out = append(out, msgview.Section{Title: fmt.Sprintf("Response %d", i+1), Body: indent(r)})
	}
	if e.Status != nil {
		tone, body := "ok", e.Status.Code
		if e.Status.Code != "OK" {
			tone = "error"
		}
		if e.Status.Message != "" {
			body += ": " + e.Status.Message
		}
		for _, d := range e.Status.Details {
			body += "\n" + indent(d)
		}
		out = append(out, msgview.Section{Title: "Status", Body: body, Tone: tone})
	}
	if len(e.Trailer) > 0 {
		out = append(out, msgview.Section{Title: "Trailers", Body: metadataLines(e.Trailer)})
	}
	if e.Rule != nil {
		out = append(out, msgview.Section{Title: "Rule", Body: e.Rule.Name + " " + e.Rule.Pos})
	}
	return out
}

// metadataLines renders journal metadata one "name: value" per line,
// sorted by name (values of -bin keys stay base64, as the journal has them).
func metadataLines(md map[string][]string) string {
	var lines []string
	for _, k := range slices.Sorted(maps.Keys(md)) {
		for _, v := range md[k] {
			lines = append(lines, k+": "+v)
		}
	}
	return strings.Join(lines, "\n")
}

func indent(v any) string {
	var raw []byte
	switch v := v.(type) {
	case json.RawMessage:
		raw = v
	default:
		raw, _ = json.Marshal(v)
	}
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return string(raw)
	}
	return b.String()
}

// View renders the filter line, the entries and the selected entry in
// full when shown, exactly the view's size.
func (m Model) View() string {
	if m.width <= 0 || m.height <= 0 {
		return ""
	}
	filterLine := m.filter.View()
	if !m.filter.Focused() && m.filter.Value() == "" {
		filterLine = m.Styles.Muted.Render("/ to filter")
	}
	all, _ := m.Len()
	lines := []string{filterLine}
	rows := m.listHeight()
	methodW, codeW := 0, len("OK")
	for i := m.offset; i < len(m.shown) && i < m.offset+rows; i++ {
		e := m.entries[m.shown[i]]
		methodW = max(methodW, len(e.Method))
		_, _, code, _ := parts(e)
		codeW = max(codeW, len(code))
	}
	if len(m.shown) == 0 {
		if all == 0 {
			lines = append(lines, m.Styles.Muted.Render("no calls yet"))
		} else {
			lines = append(lines, m.Styles.Muted.Render("no entry matches the filter"))
		}
	}
	for i := m.offset; i < len(m.shown) && i < m.offset+rows; i++ {
		e := m.entries[m.shown[i]]
		marker := "  "
		if i == m.cursor {
			marker = "▸ "
		}
		line := marker + m.row(e, methodW, codeW)
		switch {
		case i == m.cursor && m.focused:
			line = m.Styles.Selected.Render(theme.Fit(line, m.width))
		case e.Status != nil && e.Status.Code != "OK":
			line = m.Styles.Error.Render(line)
		}
		lines = append(lines, line)
	}
	list := theme.FitLines(strings.Join(lines, "\n"), m.width, rows+1)
	if !m.details {
		return list
	}
	return list + "\n" + m.Styles.Muted.Render(strings.Repeat("─", m.width)) + "\n" + m.detail.View()
}
