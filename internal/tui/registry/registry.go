// Package registry is the live table of a mock upstream's connected peers:
// ID, remote address, connected since, calls each way, last call, and the
// services each peer's backchannel offers. Rows come and go as peers join
// and leave.
package registry

import (
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/table"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/bcctl/bcctl/internal/tui/theme"
	"github.com/bcctl/bcctl/internal/words"
)

// Peer is one connected peer.
type Peer struct {
	// ID is the peer's backchannel ID.
	ID uint64
	// Addr is its remote address.
	Addr string
	// ConnectedAt is when it completed the handshake.
	ConnectedAt time.Time
	// ForwardCalls counts the calls it made to the upstream; ReverseCalls
	// the calls the upstream made into its backchannel.
	ForwardCalls, ReverseCalls int
	// LastCall is when its last call (either way) ended; zero for none.
	LastCall time.Time
	// Services are the services its backchannel offers (by reflection);
	// nil while unknown.
	Services []string
}

// EventKind says what happened to a peer.
type EventKind int

// Kinds of peer events.
const (
	// Joined: the peer connected.
	Joined EventKind = iota + 1
	// Left: the peer's connection closed.
	Left
	// Updated: the peer's counts, last call or services changed.
	Updated
)

// Event is one change of the registry.
type Event struct {
	Kind EventKind
	Peer Peer
}

// KeyMap are the table's keys.
type KeyMap = table.KeyMap

// DefaultKeyMap returns the table's keys.
func DefaultKeyMap() KeyMap { return table.DefaultKeyMap() }

// Styles are the table's styles.
type Styles struct {
	Table table.Styles
	Empty lipgloss.Style
}

// DefaultStyles returns the table's styles in th.
func DefaultStyles(th theme.Theme) Styles {
	return Styles{
		Table: table.Styles{
			Header:   th.Title.Padding(0, 1),
			Cell:     th.Text.Padding(0, 1),
			Selected: th.Selected,
		},
		Empty: th.Muted,
	}
}

// Model is the table.
type Model struct {
	Styles Styles

	tbl     table.Model
	peers   []Peer
	width   int
	height  int
	focused bool
}

// New returns an empty table styled by th.
func New(th theme.Theme) Model {
	st := DefaultStyles(th)
	tbl := table.New(table.WithStyles(st.Table), table.WithKeyMap(DefaultKeyMap()), table.WithColumns(columns(80)))
	return Model{Styles: st, tbl: tbl}
}

// KeyMap returns the table's keys, for help.
func (m Model) KeyMap() KeyMap { return m.tbl.KeyMap }

// SetPeers replaces every row.
func (m *Model) SetPeers(peers []Peer) {
	selected := m.selectedID()
	m.peers = append([]Peer(nil), peers...)
	m.sync(selected)
}

// Apply applies a join, leave or update. The selection stays on the same
// peer while it is connected.
func (m *Model) Apply(ev Event) {
	selected := m.selectedID() // before the rows change under the cursor
	switch ev.Kind {
	case Joined, Updated:
		for i := range m.peers {
			if m.peers[i].ID == ev.Peer.ID {
				m.peers[i] = ev.Peer
				m.sync(selected)
				return
			}
		}
		m.peers = append(m.peers, ev.Peer)
	case Left:
		for i := range m.peers {
			if m.peers[i].ID == ev.Peer.ID {
				m.peers = append(m.peers[:i], m.peers[i+1:]...)
				break
			}
		}
	}
	m.sync(selected)
}

// Peers returns the connected peers, by ID.
func (m Model) Peers() []Peer { return m.peers }

// Selected returns the selected peer.
func (m Model) Selected() (Peer, bool) {
	i := m.tbl.Cursor()
	if i < 0 || i >= len(m.peers) {
		return Peer{}, false
	}
	return m.peers[i], true
}

// selectedID is the ID of the selected peer, 0 when none is.
func (m Model) selectedID() uint64 {
	if p, ok := m.Selected(); ok {
		return p.ID
	}
	return 0
}

// sync rebuilds the rows, keeping peer selected selected (or the row in
// its place when it has left).
func (m *Model) sync(selected uint64) {
	cursor := max(min(m.tbl.Cursor(), len(m.peers)-1), 0)
	sort.Slice(m.peers, func(i, j int) bool { return m.peers[i].ID < m.peers[j].ID })
	rows := make([]table.Row, len(m.peers))
	for i, p := range m.peers {
		if p.ID == selected {
			cursor = i
		}
	}
	for i, p := range m.peers {
		rows[i] = m.row(p, i == cursor)
	}
	m.tbl.SetRows(rows)
	if len(rows) > 0 {
		m.tbl.SetCursor(cursor)
	}
}

func (m Model) row(p Peer, selected bool) table.Row {
	id := "  " + strconv.FormatUint(p.ID, 10)
	if selected {
		id = "▸ " + strconv.FormatUint(p.ID, 10)
	}
	last := "-"
	if !p.LastCall.IsZero() {
		last = p.LastCall.Format("15:04:05")
	}
	services := "?"
	if p.Services != nil {
		services = strings.Join(p.Services, ", ")
		if services == "" {
			services = "(none)"
		}
	}
	return table.Row{
		id, p.Addr, p.ConnectedAt.Format("15:04:05"),
		strconv.Itoa(p.ForwardCalls), strconv.Itoa(p.ReverseCalls), last, services,
	}
}

// SetSize sets the table's size in cells.
func (m *Model) SetSize(width, height int) {
	m.width, m.height = width, height
	cols := columns(width)
	m.tbl.SetColumns(cols)
	m.tbl.SetWidth(width)
	m.tbl.SetHeight(max(height, 2))
	m.sync(m.selectedID())
}

// columns fits the table's columns to width: the services column takes
// what the others leave.
func columns(width int) []table.Column {
	cols := []table.Column{
		{Title: "  ID", Width: 6}, {Title: "Address", Width: 21}, {Title: "Since", Width: 8},
		{Title: "Fwd", Width: 4}, {Title: "Rev", Width: 4}, {Title: "Last call", Width: 9},
	}
	used := 0
	for _, c := range cols {
		used += c.Width + 2 // one cell of padding each side
	}
	return append(cols, table.Column{Title: "Backchannel services", Width: max(width-used-2, 8)})
}

// Focus lets keys move the selection.
func (m *Model) Focus() {
	m.focused = true
	m.tbl.Focus()
}

// Blur stops keys from moving the selection.
func (m *Model) Blur() {
	m.focused = false
	m.tbl.Blur()
}

// Focused reports whether keys move the selection.
func (m Model) Focused() bool { return m.focused }

// Update moves the selection on keys when focused.
func (m Model) Update(msg tea.Msg) (Model, tea.Cmd) {
	if _, ok := msg.(tea.KeyMsg); ok && !m.focused {
		return m, nil
	}
	var cmd tea.Cmd
	m.tbl, cmd = m.tbl.Update(msg)
	m.sync(m.selectedID()) // move the marker
	return m, cmd
}

// View renders the table, exactly its size.
func (m Model) View() string {
	if m.width <= 0 || m.height <= 0 {
		return ""
	}
	if len(m.peers) == 0 {
		header, _, _ := strings.Cut(m.tbl.View(), "\n")
		return theme.FitLines(header+"\n"+m.Styles.Empty.Render(" no peers connected yet"), m.width, m.height)
	}
	return theme.FitLines(m.tbl.View(), m.width, m.height)
}

// Summary is "3 peers" for titles.
func Summary(n int) string { return words.Count(n, "peer") }
