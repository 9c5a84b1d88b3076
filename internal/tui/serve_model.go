package tui

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/journal"
	"github.com/bcctl/bcctl/internal/tui/forward"
	"github.com/bcctl/bcctl/internal/tui/helpbar"
	"github.com/bcctl/bcctl/internal/tui/journalview"
	"github.com/bcctl/bcctl/internal/tui/registry"
	"github.com/bcctl/bcctl/internal/tui/theme"
	"github.com/bcctl/bcctl/internal/words"
)

// ServeConfig configures the serve program.
type ServeConfig struct {
	// Context bounds the watches of Peers and Journal; nil means
	// context.Background (RunServe passes its own).
	Context context.Context
	// Peers is the live registry. Required.
	Peers PeerSource
	// Journal is the journal as it is written; nil leaves the journal
	// pane out.
	Journal JournalSource
	// Caller makes reverse calls into peers; nil leaves the reverse-call
	// screen out.
	Caller ReverseCaller
	// Schema lists the methods peers offer on their backchannel and
	// resolves their types. Required with Caller.
	Schema dynamic.Source
	// Headers are sent with every reverse call made from the TUI.
	Headers metadata.MD
	// Bytes says how bytes fields of the reverse calls made from the TUI
	// are shown (the journal's entries come as serve rendered them).
	Bytes dynamic.BytesMode
	// CallTimeout is the deadline reverse calls made from the TUI start
	// with (the screen's deadline field changes it); zero means
	// DefaultCallTimeout.
	CallTimeout time.Duration
	// Program names what is shown ("bcctl serve", the default, or "bcctl
	// proxy"); Title says where it listens ("listening on
	// 127.0.0.1:9000").
	Program string
	Title   string
	// Notices are serve's own news while the program runs (a script
	// reloaded, or one that changed but does not load); the latest shows
	// in the peer pane's title. nil means none.
	Notices <-chan string
	// Theme styles the screens; the zero Theme means no colors.
	Theme theme.Theme
	// Location is the time zone of journal times; nil means time.Local.
	Location *time.Location
	// Now is the clock of the calls made from the program; nil means
	// time.Now.
	Now func() time.Time
	// KeyMap overrides the default keys when set.
	KeyMap *ServeKeyMap
}

// DefaultCallTimeout is the deadline a reverse call made from the serve
// program starts with: long enough for a person answering it by hand on
// the other side.
const DefaultCallTimeout = time.Minute

// Screens and panes of the serve program.
const (
	screenPeers = iota
	screenReverse
)

const (
	panePeers = iota
	paneJournal
)

// Messages of the serve program's watches.
type (
	peersMsg struct {
		peers  []registry.Peer
		events <-chan registry.Event
	}
	peerEventMsg struct{ ev registry.Event }
	journalMsg   struct {
		entries []journal.Entry
		events  <-chan journal.Entry
	}
	journalEntryMsg struct{ e journal.Entry }
	watchEndedMsg   struct{ what string }
	// peerMethodsMsg carries the methods a peer says it offers.
	peerMethodsMsg struct {
		peer    uint64
		methods []protoreflect.MethodDescriptor
	}
)

// ServeModel is the serve program's model.
type ServeModel struct {
	keys ServeKeyMap
	cfg  ServeConfig
	th   theme.Theme

	peers    registry.Model
	journal  journalview.Model
	fwd      forward.Model
	help     helpbar.Model
	target   uint64 // the peer the reverse-call screen calls
	screen   int
	pane     int
	width    int
	height   int
	peerEv   <-chan registry.Event
	journEv  <-chan journal.Entry
	quitting bool
	// confirmQuit: q was pressed with reverse calls in flight; q again
	// quits.
	confirmQuit bool
	note        string
	notice      string // the latest of cfg.Notices
}

// NewServeModel returns the serve program's model.
func NewServeModel(cfg ServeConfig) ServeModel {
	th := cfg.Theme
	if th.Renderer == nil {
		th = theme.New(nil)
	}
	if cfg.Context == nil {
		cfg.Context = context.Background()
	}
	keys := DefaultServeKeyMap()
	if cfg.KeyMap != nil {
		keys = *cfg.KeyMap
	}
	m := ServeModel{
		keys: keys, cfg: cfg, th: th,
		peers: registry.New(th), journal: journalview.New(th), help: helpbar.New(th),
	}
	if cfg.Location != nil {
		m.journal.Location = cfg.Location
	}
	if cfg.CallTimeout == 0 {
		cfg.CallTimeout = DefaultCallTimeout
		m.cfg.CallTimeout = cfg.CallTimeout
	}
	if cfg.Caller != nil {
		m.fwd = forward.New(forward.Config{Source: cfg.Schema, Invoker: m.invoker(0), Headers: cfg.Headers, Timeout: cfg.CallTimeout, Now: cfg.Now, Bytes: cfg.Bytes}, th)
	}
	m.setPane(panePeers)
	return m
}

// invoker calls into peer id through the ReverseCaller.
func (m ServeModel) invoker(id uint64) forward.Invoker {
	caller := m.cfg.Caller
	return forward.InvokerFunc(func(ctx context.Context, md protoreflect.MethodDescriptor, headers metadata.MD,
		h dynamic.InvocationEventHandler, requests dynamic.RequestSupplier) error {
		if id == 0 {
			return fmt.Errorf("no peer chosen: pick one in the peer table first")
		}
		return caller.ReverseCall(ctx, id, md, headers, h, requests)
	})
}

// Init starts the watches and loads the backchannel methods.
func (m ServeModel) Init() tea.Cmd {
	ctx := m.cfg.Context
	peers := m.cfg.Peers
	cmds := []tea.Cmd{func() tea.Msg {
		snap, events := peers.WatchPeers(ctx)
		return peersMsg{peers: snap, events: events}
	}}
	if j := m.cfg.Journal; j != nil {
		cmds = append(cmds, func() tea.Msg {
			snap, events := j.WatchJournal(ctx)
			return journalMsg{entries: snap, events: events}
		})
	}
	if m.cfg.Caller != nil {
		cmds = append(cmds, m.fwd.Init())
	}
	if m.cfg.Notices != nil {
		cmds = append(cmds, nextNotice(m.cfg.Notices))
	}
	return tea.Batch(cmds...)
}

// noticeMsg carries one of serve's notices.
type noticeMsg string

func nextNotice(ch <-chan string) tea.Cmd {
	return func() tea.Msg {
		n, ok := <-ch
		if !ok {
			return watchEndedMsg{what: "notices"}
		}
		return noticeMsg(n)
	}
}

func nextPeerEvent(ch <-chan registry.Event) tea.Cmd {
	return func() tea.Msg {
		ev, ok := <-ch
		if !ok {
			return watchEndedMsg{what: "peers"}
		}
		return peerEventMsg{ev: ev}
	}
}

func nextJournalEntry(ch <-chan journal.Entry) tea.Cmd {
	return func() tea.Msg {
		e, ok := <-ch
		if !ok {
			return watchEndedMsg{what: "journal"}
		}
		return journalEntryMsg{e: e}
	}
}

// Update implements tea.Model.
func (m ServeModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.layout()
		return m, nil
	case peersMsg:
		m.peers.SetPeers(msg.peers)
		m.layout()
		m.peerEv = msg.events
		return m, nextPeerEvent(msg.events)
	case peerEventMsg:
		m.peers.Apply(msg.ev)
		m.layout()
		if msg.ev.Kind == registry.Left && msg.ev.Peer.ID == m.target {
			m.note = fmt.Sprintf("peer %d has left", m.target)
		}
		return m, nextPeerEvent(m.peerEv)
	case journalMsg:
		m.journal.Add(msg.entries...)
		m.journEv = msg.events
		return m, nextJournalEntry(msg.events)
	case journalEntryMsg:
		m.journal.Add(msg.e)
		return m, nextJournalEntry(m.journEv)
	case noticeMsg:
		// One line: the pane's title cuts what does not fit.
		m.notice = strings.Join(strings.Fields(string(msg)), " ")
		return m, nextNotice(m.cfg.Notices)
	case watchEndedMsg:
		return m, nil
	case peerMethodsMsg:
		if msg.peer == m.target {
			m.fwd.SetOffered(msg.methods, fmt.Sprintf("offered by peer %d", msg.peer))
		}
		return m, nil
	case tea.KeyMsg:
		return m.handleKey(msg)
	}
	if m.cfg.Caller != nil {
		var cmd tea.Cmd
		m.fwd, cmd = m.fwd.Update(msg)
		return m, cmd
	}
	return m, nil
}

func (m ServeModel) editing() bool {
	if m.screen == screenReverse {
		return m.fwd.Editing()
	}
	return m.pane == paneJournal && m.journal.Filtering()
}

func (m *ServeModel) setPane(p int) {
	if p == paneJournal && m.cfg.Journal == nil {
		p = panePeers
	}
	m.pane = p
	m.peers.Blur()
	m.journal.Blur()
	if p == panePeers {
		m.peers.Focus()
	} else {
		m.journal.Focus()
	}
}

// callPeer opens the reverse-call screen for the selected peer.
func (m *ServeModel) callPeer() tea.Cmd {
	if m.cfg.Caller == nil {
		return nil
	}
	var load tea.Cmd
	p, ok := m.peers.Selected()
	if ok && p.ID != m.target {
		m.target = p.ID
		cfg := m.fwd.Config()
		cfg.Invoker = m.invoker(p.ID)
		cfg.Target = fmt.Sprintf("peer %d (%s)", p.ID, p.Addr)
		m.fwd.SetConfig(cfg) // the old peer's result leaves the screen
		m.fwd.SetOffered(nil, "")
		load = m.loadPeerMethods(p.ID)
	}
	if ok {
		m.note = ""
	}
	m.screen = screenReverse
	m.peers.Blur()
	m.journal.Blur()
	return tea.Batch(m.fwd.Activate(), load)
}

// loadPeerMethods returns the Cmd that asks peer which methods its
// backchannel offers, when the caller can tell.
func (m ServeModel) loadPeerMethods(peer uint64) tea.Cmd {
	pm, ok := m.cfg.Caller.(PeerMethods)
	if !ok {
		return nil
	}
	ctx := m.cfg.Context
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(ctx, peerMethodsTimeout)
		defer cancel()
		methods, err := pm.PeerMethods(ctx, peer)
		if err != nil {
			return nil // the picker lists the schema alone
		}
		return peerMethodsMsg{peer: peer, methods: methods}
	}
}

// peerMethodsTimeout bounds asking a peer which methods it offers.
const peerMethodsTimeout = 10 * time.Second

func (m *ServeModel) showPeers() {
	m.screen = screenPeers
	if m.cfg.Caller != nil {
		m.fwd.Deactivate()
	}
	m.setPane(m.pane)
}

func (m ServeModel) handleKey(msg tea.KeyMsg) (tea.Model, tea.Cmd) {
	k := m.keys
	confirming := m.confirmQuit
	m.confirmQuit = false
	switch {
	case key.Matches(msg, k.Quit):
		m.quitting = true
		return m, tea.Quit
	case key.Matches(msg, k.Help):
		m.help.ShowAll = !m.help.ShowAll
		m.layout()
		return m, nil
	case key.Matches(msg, k.Screen):
		if m.screen == screenPeers {
			return m, m.callPeer()
		}
		m.showPeers()
		return m, nil
	}
	if !m.editing() {
		switch {
		case key.Matches(msg, k.QuitLetter):
			if m.quitQuestion() != "" && !confirming {
				m.confirmQuit = true
				return m, nil
			}
			m.quitting = true
			return m, tea.Quit
		case key.Matches(msg, k.HelpLetter):
			m.help.ShowAll = !m.help.ShowAll
			m.layout()
			return m, nil
		case key.Matches(msg, k.Peers):
			m.showPeers()
			return m, nil
		case key.Matches(msg, k.Reverse):
			return m, m.callPeer()
		}
	}
	if m.screen == screenReverse {
		var cmd tea.Cmd
		m.fwd, cmd = m.fwd.Update(msg)
		return m, cmd
	}
	switch {
	case !m.editing() && key.Matches(msg, k.NextPane):
		m.setPane(1 - m.pane)
		return m, nil
	case !m.editing() && key.Matches(msg, k.PrevPane):
		m.setPane(1 - m.pane)
		return m, nil
	case m.pane == panePeers && key.Matches(msg, k.Call):
		return m, m.callPeer()
	}
	var cmd tea.Cmd
	if m.pane == panePeers {
		m.peers, cmd = m.peers.Update(msg)
	} else {
		m.journal, cmd = m.journal.Update(msg)
	}
	return m, cmd
}

// Layout of the peers screen: the table takes up to a third of the
// height, the journal the rest.
func (m ServeModel) bodyHeight() int {
	return max(m.height-1-lipgloss.Height(m.helpView()), 4)
}

func (m ServeModel) tableHeight() int {
	if m.cfg.Journal == nil {
		return m.bodyHeight()
	}
	return min(max(m.bodyHeight()/3, 6), max(len(m.peers.Peers())+4, 6))
}

func (m *ServeModel) layout() {
	if m.width == 0 || m.height == 0 {
		return
	}
	th := m.tableHeight()
	m.peers.SetSize(m.width-2, th-2)
	m.journal.SetSize(m.width-2, m.bodyHeight()-th-2)
	if m.cfg.Caller != nil {
		m.fwd.SetSize(m.width-2, m.bodyHeight()-2)
	}
}

// View implements tea.Model.
func (m ServeModel) View() string {
	if m.quitting || m.width == 0 || m.height == 0 {
		return ""
	}
	var body string
	if m.screen == screenReverse {
		title := "Reverse call"
		if m.target != 0 {
			title += " into " + m.fwd.Config().Target
		}
		if m.note != "" {
			title += " · " + m.note
		}
		body = m.th.Pane(title, m.fwd.View(), m.width, m.bodyHeight(), true)
	} else {
		th := m.tableHeight()
		n := len(m.peers.Peers())
		title := "Peers (" + registry.Summary(n) + ")"
		if m.notice != "" {
			title += " · " + m.notice
		}
		body = m.th.Pane(title, m.peers.View(), m.width, th, m.pane == panePeers)
		if m.cfg.Journal != nil {
			all, shown := m.journal.Len()
			title := fmt.Sprintf("Journal (%d)", all)
			if f := m.journal.Filter(); f != "" {
				title = fmt.Sprintf("Journal (%d of %d) /%s", shown, all, f)
			}
			body += "\n" + m.th.Pane(title, m.journal.View(), m.width, m.bodyHeight()-th, m.pane == paneJournal)
		}
	}
	return m.titleBar() + "\n" + body + "\n" + m.helpView()
}

// quitQuestion says what quitting now would do to the reverse calls in
// flight; "" when none is.
func (m ServeModel) quitQuestion() string {
	n := m.fwd.InFlight()
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("press q again to quit (%d reverse %s in flight %s cancelled); any other key stays", n, words.Plural(n, "call", "calls"), words.Plural(n, "is", "are"))
}

func (m ServeModel) titleBar() string {
	program := m.cfg.Program
	if program == "" {
		program = "bcctl serve"
	}
	left := m.th.Title.Render(program)
	if m.cfg.Title != "" {
		left += m.th.Muted.Render(" · " + m.cfg.Title)
	}
	left += m.th.Muted.Render(" · " + registry.Summary(len(m.peers.Peers())))
	screens := []string{"Peers"}
	if m.cfg.Caller != nil {
		screens = append(screens, "Reverse call")
	}
	active := 0
	if m.screen == screenReverse {
		active = 1
	}
	return m.th.TitleBar(left, m.width, active, screens...)
}

func (m ServeModel) helpView() string {
	if q := m.quitQuestion(); m.confirmQuit && q != "" {
		// The question takes the place of the keys, in full.
		return m.th.Error.Render(ansi.Wrap(q, max(m.width, 1), ""))
	}
	m.help.SetWidth(m.width)
	return m.help.View(m.helpKeys())
}

func (m ServeModel) helpKeys() helpbar.Keys {
	k := m.keys
	keep := []key.Binding{k.HelpLetter, k.QuitLetter}
	if m.editing() {
		keep = []key.Binding{k.Help, k.Quit}
	}
	global := [][]key.Binding{{k.Peers, k.Reverse, k.Screen}, helpAndQuit(k.Help, k.HelpLetter, k.Quit, k.QuitLetter)}
	if m.screen == screenReverse {
		return helpbar.Keys{Short: append(m.fwd.ShortHelp(), k.Screen), Keep: keep, Full: append(m.fwd.FullHelp(), global...)}
	}
	tk := m.peers.KeyMap()
	j := m.journal.KeyMap
	var short []key.Binding
	switch {
	case m.editing():
		short = []key.Binding{key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "apply filter")), j.ClearFilter}
	case m.pane == panePeers:
		short = []key.Binding{key.NewBinding(key.WithKeys("up", "down"), key.WithHelp("↑/↓", "select"))}
		if m.cfg.Caller != nil {
			short = append(short, k.Call)
		}
		short = append(short, k.NextPane)
	default:
		short = []key.Binding{key.NewBinding(key.WithKeys("up", "down"), key.WithHelp("↑/↓", "select")), j.Filter, j.Details, j.Last, k.NextPane}
	}
	full := [][]key.Binding{
		{tk.LineUp, tk.LineDown, k.Call},
		{j.Up, j.Down, j.First, j.Last},
		{j.Filter, j.ClearFilter, j.Details},
		{k.NextPane, k.PrevPane},
	}
	full = append(full, global...)
	return helpbar.Keys{Short: short, Keep: keep, Full: full}
}
