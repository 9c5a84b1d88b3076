// Package queue is the list of reverse calls waiting for an answer: method,
// arrival time, state, and for pending calls the time left before their
// deadline, ticking once a second.
package queue

import (
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
	"google.golang.org/grpc/codes"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/tui/answer"
	"github.com/bcctl/bcctl/internal/tui/theme"
)

// Item is one call in the queue.
type Item struct {
	// ID is the call's ID (answer.Call.ID).
	ID uint64
	// Method is "pkg.Svc/Method".
	Method string
	// Arrived is when the call arrived; Deadline when it expires (zero for
	// none).
	Arrived, Deadline time.Time
	// State is where the call stands.
	State answer.State
	// Code is the status the call ended with (when it has ended).
	Code codes.Code
	// Received and Sent count the messages each way.
	Received, Sent int
}

// KeyMap are the queue's keys.
type KeyMap struct {
	Up, Down, First, Last key.Binding
}

// DefaultKeyMap returns the queue's default keys.
func DefaultKeyMap() KeyMap {
	return KeyMap{
		Up:    key.NewBinding(key.WithKeys("up", "k"), key.WithHelp("↑/k", "previous call")),
		Down:  key.NewBinding(key.WithKeys("down", "j"), key.WithHelp("↓/j", "next call")),
		First: key.NewBinding(key.WithKeys("home", "g"), key.WithHelp("g", "first call")),
		Last:  key.NewBinding(key.WithKeys("end", "G"), key.WithHelp("G", "last call")),
	}
}

// Styles are the queue's styles.
type Styles struct {
	Time, Method, Selected    lipgloss.Style
	Pending, Soon, Done, Fail lipgloss.Style
	Empty                     lipgloss.Style
}

// DefaultStyles returns the queue's styles in th.
func DefaultStyles(th theme.Theme) Styles {
	return Styles{
		Time: th.Muted, Method: th.Text, Selected: th.Selected,
		Pending: th.Accent, Soon: th.Warn, Done: th.OK, Fail: th.Error,
		Empty: th.Muted,
	}
}

// TickMsg makes the queue redraw the time left. It belongs to one queue.
type TickMsg struct {
	Time time.Time
	id   int64
}

// SoonThreshold is the time left under which a pending call is shown as
// about to expire.
const SoonThreshold = 5 * time.Second

var lastID atomic.Int64

// Model is the queue.
type Model struct {
	KeyMap KeyMap
	Styles Styles
	// Now is the clock; the queue reads it on every tick.
	Now func() time.Time

	id      int64
	items   []Item
	cursor  int
	offset  int
	width   int
	height  int
	focused bool
	now     time.Time
}

// New returns an empty queue styled by th.
func New(th theme.Theme) Model {
	return Model{
		KeyMap: DefaultKeyMap(), Styles: DefaultStyles(th), Now: time.Now,
		id: lastID.Add(1), now: time.Now(),
	}
}

// Tick returns the tea.Cmd that redraws the queue every second; start it
// once (from the program's Init).
func (m Model) Tick() tea.Cmd {
	id := m.id
	return tea.Tick(time.Second, func(t time.Time) tea.Msg { return TickMsg{Time: t, id: id} })
}

// SetNow sets the time the queue counts down from (tests and golden files).
func (m *Model) SetNow(t time.Time) { m.now = t }

// SetSize sets the queue's size in cells, without borders.
func (m *Model) SetSize(width, height int) {
	m.width, m.height = width, height
	m.clamp()
}

// Focus lets keys move the selection.
func (m *Model) Focus() { m.focused = true }

// Blur stops keys from moving the selection.
func (m *Model) Blur() { m.focused = false }

// Focused reports whether keys move the selection.
func (m Model) Focused() bool { return m.focused }

// Len returns the number of calls in the queue.
func (m Model) Len() int { return len(m.items) }

// Items returns the calls in the queue, oldest first.
func (m Model) Items() []Item { return m.items }

// Pending counts the calls that are still open.
func (m Model) Pending() int {
	n := 0
	for _, it := range m.items {
		if it.State.Open() || it.State == answer.Delegated {
			n++
		}
	}
	return n
}

// Upsert adds it, or replaces the item with the same ID. A new call is
// selected when nothing open was selected, so the next call to answer is
// always in view.
func (m *Model) Upsert(it Item) {
	for i := range m.items {
		if m.items[i].ID == it.ID {
			m.items[i] = it
			return
		}
	}
	m.items = append(m.items, it)
	if sel, ok := m.Selected(); !ok || !sel.State.Open() {
		m.cursor = len(m.items) - 1
	}
	m.clamp()
}

// Item returns the item with id.
func (m Model) Item(id uint64) (Item, bool) {
	for _, it := range m.items {
		if it.ID == id {
			return it, true
		}
	}
	return Item{}, false
}

// Selected returns the selected call.
func (m Model) Selected() (Item, bool) {
	if m.cursor < 0 || m.cursor >= len(m.items) {
		return Item{}, false
	}
	return m.items[m.cursor], true
}

// Select selects the call with id.
func (m *Model) Select(id uint64) {
	for i, it := range m.items {
		if it.ID == id {
			m.cursor = i
			m.clamp()
			return
		}
	}
}

// NextPending selects the first open call after the selected one (wrapping
// around) and reports whether there was one.
func (m *Model) NextPending() bool {
	n := len(m.items)
	for i := 1; i <= n; i++ {
		j := (m.cursor + i) % n
		if m.items[j].State.Open() {
			m.cursor = j
			m.clamp()
			return true
		}
	}
	return false
}

// Update moves the selection on keys (when focused) and redraws on ticks.
func (m Model) Update(msg tea.Msg) (Model, tea.Cmd) {
	switch msg := msg.(type) {
	case TickMsg:
		if msg.id != m.id {
			return m, nil
		}
		m.now = m.Now()
		return m, m.Tick()
	case tea.KeyMsg:
		if !m.focused {
			return m, nil
		}
		switch {
		case key.Matches(msg, m.KeyMap.Up):
			m.cursor--
		case key.Matches(msg, m.KeyMap.Down):
			m.cursor++
		case key.Matches(msg, m.KeyMap.First):
			m.cursor = 0
		case key.Matches(msg, m.KeyMap.Last):
			m.cursor = len(m.items) - 1
		}
		m.clamp()
	}
	return m, nil
}

func (m *Model) clamp() {
	if m.cursor >= len(m.items) {
		m.cursor = len(m.items) - 1
	}
	if m.cursor < 0 {
		m.cursor = 0
	}
	rows := max(m.height, 1)
	if m.cursor < m.offset {
		m.offset = m.cursor
	}
	if m.cursor >= m.offset+rows {
		m.offset = m.cursor - rows + 1
	}
	if m.offset > max(len(m.items)-rows, 0) {
		m.offset = max(len(m.items)-rows, 0)
	}
}

// View renders one line per call, newest last:
//
//	▸ 14:02:11 RefTransaction/VoteTransaction   9s left
func (m Model) View() string {
	if m.width <= 0 || m.height <= 0 {
		return ""
	}
	if len(m.items) == 0 {
		return theme.FitLines(m.Styles.Empty.Render("no reverse calls yet"), m.width, m.height)
	}
	lines := make([]string, 0, m.height)
	for i := m.offset; i < len(m.items) && len(lines) < m.height; i++ {
		lines = append(lines, m.row(i))
	}
	return theme.FitLines(strings.Join(lines, "\n"), m.width, m.height)
}

// stateWidth is the width of the state column ("pending 1m05s").
const stateWidth = 10

func (m Model) row(i int) string {
	it := m.items[i]
	marker := "  "
	if i == m.cursor {
		marker = "▸ "
	}
	state := m.state(it)
	stateW := min(stateWidth, max(m.width/2, 1))
	when := it.Arrived.Format("15:04:05")
	methodW := max(m.width-2-len(when)-1-1-stateW, 1)
	method := it.Method
	if lipgloss.Width(method) > methodW {
		method = shortMethod(it.Method)
	}
	if lipgloss.Width(method) > methodW {
		_, method, _ = strings.Cut(it.Method, "/")
	}
	plain := marker + when + " " + theme.Fit(method, methodW) + " " + padLeft(ansi.Strip(state), stateW)
	if i == m.cursor && m.focused {
		return m.Styles.Selected.Render(theme.Fit(plain, m.width))
	}
	return marker + m.Styles.Time.Render(when) + " " + m.Styles.Method.Render(theme.Fit(method, methodW)) + " " + padLeft(state, stateW)
}

// padLeft right-aligns s in width cells (cutting it when longer).
func padLeft(s string, width int) string {
	w := lipgloss.Width(s)
	if w >= width {
		return theme.Fit(s, width)
	}
	return strings.Repeat(" ", width-w) + s
}

// state renders the state column: the time left of a pending call, or how
// it ended.
func (m Model) state(it Item) string {
	switch it.State {
	case answer.Pending:
		s := ""
		if it.Sent > 0 {
			s = fmt.Sprintf("%d sent ", it.Sent)
		}
		if it.Deadline.IsZero() {
			if s == "" {
				s = "pending"
			}
			return m.Styles.Pending.Render(strings.TrimSpace(s))
		}
		left := it.Deadline.Sub(m.now)
		if left < 0 {
			left = 0
		}
		style := m.Styles.Pending
		if left < SoonThreshold {
			style = m.Styles.Soon
		}
		if s == "" {
			return style.Render(FormatLeft(left) + " left")
		}
		return style.Render(s + FormatLeft(left))
	case answer.Delegated:
		return m.Styles.Pending.Render("script…")
	case answer.Answered, answer.Scripted:
		style := m.Styles.Done
		if it.Code != codes.OK {
			style = m.Styles.Fail
		}
		return style.Render(calls.CodeName(it.Code))
	default:
		return m.Styles.Fail.Render(it.State.String())
	}
}

// FormatLeft renders a time left: "9s", "1m05s", "2h03m".
func FormatLeft(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	default:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
}

// shortMethod drops the package from "pkg.Svc/Method" when the line is
// short of room: "RefTransaction/VoteTransaction".
func shortMethod(full string) string {
	svc, method, ok := strings.Cut(full, "/")
	if !ok {
		return full
	}
	if i := strings.LastIndex(svc, "."); i >= 0 {
		svc = svc[i+1:]
	}
	return svc + "/" + method
}
