package tui

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"google.golang.org/protobuf/proto"

	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/tui/answer"
	"github.com/bcctl/bcctl/internal/tui/editor"
	"github.com/bcctl/bcctl/internal/tui/errform"
	"github.com/bcctl/bcctl/internal/tui/forward"
	"github.com/bcctl/bcctl/internal/tui/helpbar"
	"github.com/bcctl/bcctl/internal/tui/msgview"
	"github.com/bcctl/bcctl/internal/tui/queue"
	"github.com/bcctl/bcctl/internal/tui/theme"
	"github.com/bcctl/bcctl/internal/words"
)

// AnswerConfig configures the answer program.
type AnswerConfig struct {
	// Responder is hosted on the backchannel and brings the reverse calls.
	// Required.
	Responder *answer.Responder
	// Bytes says how bytes fields are shown ("" is base64, as protobuf JSON
	// writes them; dynamic.BytesText shows UTF-8 bytes as text).
	Bytes dynamic.BytesMode
	// Resolver resolves the types inside google.protobuf.Any for display;
	// nil means the program's registry.
	Resolver dynamic.TypeResolver
	// Forward, when set, adds the screen that sends forward calls.
	Forward *forward.Config
	// Title says what the program is connected to ("127.0.0.1:9000").
	Title string
	// Theme styles the screens; the zero Theme means theme.New(nil)
	// (no colors).
	Theme theme.Theme
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// KeyMap overrides the default keys when set.
	KeyMap *AnswerKeyMap
}

// Screens of the answer program.
const (
	screenCalls = iota
	screenForward
)

// Panes of the call screen, in tab order.
const (
	paneQueue = iota
	paneDetail
	paneEditor
	paneCount
)

// callView is what the program knows of one reverse call.
type callView struct {
	call       *answer.Call
	requests   []proto.Message
	halfClosed bool
	sent       []sentMsg
	match      *answer.MatchMsg
	state      answer.State
	ended      *answer.EndedMsg
	draft      string // the reply being written
	draftSet   bool
}

type sentMsg struct {
	msg proto.Message
	by  answer.Answerer
}

// errConnectionLost is the cause shown when none is given.
var errConnectionLost = errors.New("the connection was lost")

// AnswerModel is the answer program's model.
type AnswerModel struct {
	keys AnswerKeyMap
	cfg  AnswerConfig
	th   theme.Theme

	calls   map[uint64]*callView
	queue   queue.Model
	detail  msgview.Model
	editor  editor.Model
	outcome msgview.Model // replaces the editor once the call is no longer pending
	errForm errform.Model
	fwd     forward.Model
	help    helpbar.Model

	screen  int
	pane    int
	errOpen bool // the error form replaces the editor
	errFrom int  // the pane the error form was opened from
	// transport shows the transport headers (:authority, content-type,
	// user-agent...) among a call's metadata.
	transport bool
	shownID   uint64
	width     int
	height    int
	closed    bool
	lost      error // why the connection went away; the queue stays to be read
	quitting  bool
	// confirmQuit: q was pressed with calls waiting; q again quits.
	confirmQuit bool
}

// NewAnswerModel returns the answer program's model.
func NewAnswerModel(cfg AnswerConfig) AnswerModel {
	th := cfg.Theme
	if th.Renderer == nil {
		th = theme.New(nil)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	keys := DefaultAnswerKeyMap()
	if cfg.KeyMap != nil {
		keys = *cfg.KeyMap
	}
	m := AnswerModel{
		keys: keys, cfg: cfg, th: th,
		calls:   map[uint64]*callView{},
		queue:   queue.New(th),
		detail:  msgview.New(th),
		editor:  editor.New(th),
		outcome: msgview.New(th),
		errForm: errform.New(th),
		help:    helpbar.New(th),
	}
	m.queue.Now = cfg.Now
	m.queue.SetNow(cfg.Now())
	if cfg.Forward != nil {
		m.fwd = forward.New(*cfg.Forward, th)
	}
	m.setPane(paneQueue)
	m.showSelected()
	return m
}

// Init starts waiting for reverse calls, the queue's clock and the
// loading of the forward screen's methods.
func (m AnswerModel) Init() tea.Cmd {
	cmds := []tea.Cmd{m.cfg.Responder.Next(), m.queue.Tick()}
	if m.cfg.Forward != nil {
		cmds = append(cmds, m.fwd.Init())
	}
	return tea.Batch(cmds...)
}

// Update implements tea.Model.
func (m AnswerModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.layout()
		return m, nil
	case answer.ArrivedMsg, answer.ReceivedMsg, answer.HalfClosedMsg, answer.MatchMsg,
		answer.SentMsg, answer.DelegatedMsg, answer.EndedMsg:
		m.applyEvent(msg)
		return m, m.cfg.Responder.Next()
	case answer.LostMsg:
		m.lost = msg.Cause
		if m.lost == nil {
			m.lost = errConnectionLost
		}
		return m, m.cfg.Responder.Next()
	case answer.ClosedMsg:
		m.closed = true
		return m, nil
	case answer.ResultMsg:
		m.applyResult(msg)
		return m, nil
	case errform.SubmitMsg:
		if cv, ok := m.selected(); ok {
			return m, cv.call.Fail(msg.Code, msg.Message, msg.Details)
		}
		return m, nil
	case errform.CancelMsg:
		// Back to where the person came from: from the queue, the next
		// letter must act on the queue, not be typed into the reply.
		m.errOpen = false
		m.layout()
		return m, m.setPane(m.errFrom)
	case queue.TickMsg:
		var cmd tea.Cmd
		m.queue, cmd = m.queue.Update(msg)
		return m, cmd
	case tea.KeyMsg:
		return m.handleKey(msg)
	}
	// Everything else belongs to the forward screen (loaded methods, the
	// events of its calls).
	if m.cfg.Forward != nil {
		var cmd tea.Cmd
		m.fwd, cmd = m.fwd.Update(msg)
		return m, cmd
	}
	return m, nil
}

// applyEvent records a Responder event.
func (m *AnswerModel) applyEvent(msg tea.Msg) {
	var id uint64
	switch msg := msg.(type) {
	case answer.ArrivedMsg:
		id = msg.Call.ID
		m.calls[id] = &callView{call: msg.Call, state: answer.Pending}
	case answer.ReceivedMsg:
		id = msg.ID
		if cv := m.calls[id]; cv != nil {
			cv.requests = append(cv.requests, msg.Msg)
		}
	case answer.HalfClosedMsg:
		id = msg.ID
		if cv := m.calls[id]; cv != nil {
			cv.halfClosed = true
		}
	case answer.MatchMsg:
		id = msg.ID
		if cv := m.calls[id]; cv != nil {
			cv.match = &msg
		}
	case answer.SentMsg:
		id = msg.ID
		if cv := m.calls[id]; cv != nil {
			cv.sent = append(cv.sent, sentMsg{msg: msg.Msg, by: msg.By})
		}
	case answer.DelegatedMsg:
		id = msg.ID
		if cv := m.calls[id]; cv != nil {
			cv.state = answer.Delegated
		}
	case answer.EndedMsg:
		id = msg.ID
		if cv := m.calls[id]; cv != nil {
			cv.state = msg.State
			cv.ended = &msg
		}
	}
	cv := m.calls[id]
	if cv == nil {
		return
	}
	before, _ := m.queue.Selected()
	m.queue.Upsert(m.item(cv))
	if _, ended := msg.(answer.EndedMsg); ended && before.ID == id && !m.editing() {
		// The selected call is done: move on to the next one waiting.
		m.queue.NextPending()
	}
	m.showSelected()
}

func (m *AnswerModel) item(cv *callView) queue.Item {
	it := queue.Item{
		ID: cv.call.ID, Method: dynamic.MethodName(cv.call.Method),
		Arrived: cv.call.Arrived, Deadline: cv.call.Deadline,
		State: cv.state, Received: len(cv.requests), Sent: len(cv.sent),
	}
	if cv.ended != nil && cv.ended.Status != nil {
		it.Code = cv.ended.Status.Code()
	}
	return it
}

// applyResult shows the outcome of a person's action.
func (m *AnswerModel) applyResult(msg answer.ResultMsg) {
	sel, ok := m.selected()
	if !ok || sel.call.ID != msg.ID {
		return // the person has moved on; the queue shows the outcome
	}
	if msg.Action == answer.ActionFail {
		if msg.Err != nil {
			m.errForm.SetError(msg.Err)
			return
		}
		m.errOpen = false
		m.layout()
		m.editor.SetNote("error sent")
		m.setPane(paneQueue) // the call is over: keys go to the queue again
		return
	}
	if msg.Err != nil {
		m.editor.SetError(msg.Err)
		return
	}
	switch msg.Action {
	case answer.ActionReply:
		m.editor.SetNote(fmt.Sprintf("sent to call #%d", msg.ID))
		if sel.call.ServerStreams() {
			return // the stream stays open for more
		}
	case answer.ActionEnd:
		m.editor.SetNote("ended with OK")
	}
	m.setPane(paneQueue)
}

// selected returns the selected call.
func (m AnswerModel) selected() (*callView, bool) {
	it, ok := m.queue.Selected()
	if !ok {
		return nil, false
	}
	cv := m.calls[it.ID]
	return cv, cv != nil
}

// showSelected shows the selected call in the detail view and the
// editor, keeping the reply being written for each call.
func (m *AnswerModel) showSelected() {
	cv, ok := m.selected()
	if !ok {
		m.detail.Reset([]msgview.Section{{Title: "Waiting for reverse calls", Tone: "muted",
			Body: "The calls the upstream makes into this backchannel appear on the left. Each one waits for your answer until its deadline passes."}})
		m.shownID = 0
		return
	}
	if cv.call.ID != m.shownID {
		if prev := m.calls[m.shownID]; prev != nil {
			prev.draft, prev.draftSet = m.editor.Value(), true
		}
		if !cv.draftSet {
			tmpl, err := dynamic.TemplateJSON(cv.call.Method.Output(), true)
			if err != nil {
				tmpl = "{}"
			}
			cv.draft, cv.draftSet = tmpl, true
		}
		m.editor.SetValue(cv.draft)
		m.errForm.Reset()
		m.errOpen = false
		m.shownID = cv.call.ID
		m.detail.Reset(m.detailSections(cv))
		m.outcome.Reset(m.outcomeSections(cv))
		m.layout()
		m.setPane(m.pane)
		return
	}
	m.detail.SetSections(m.detailSections(cv))
	m.outcome.SetSections(m.outcomeSections(cv))
	if !cv.state.Open() && m.pane == paneEditor && !m.errOpen {
		m.setPane(paneEditor) // the outcome takes the editor's place
	}
}

// editing reports whether typed letters go into a text field.
func (m AnswerModel) editing() bool {
	if m.screen == screenForward {
		return m.fwd.Editing()
	}
	if m.pane != paneEditor {
		return false
	}
	if m.errOpen {
		return m.errForm.Field() != errform.FieldCode
	}
	return m.replying()
}

// replying reports whether the lower pane is the reply editor (the call
// shown is pending) rather than the call's outcome.
func (m AnswerModel) replying() bool {
	cv, ok := m.selected()
	return ok && cv.state.Open()
}

func (m *AnswerModel) setPane(p int) tea.Cmd {
	m.pane = p
	m.queue.Blur()
	m.detail.Blur()
	m.editor.Blur()
	m.outcome.Blur()
	switch p {
	case paneQueue:
		m.queue.Focus()
	case paneDetail:
		m.detail.Focus()
	case paneEditor:
		switch {
		case m.errOpen:
			return m.errForm.Focus()
		case m.replying():
			return m.editor.Focus()
		}
		m.outcome.Focus()
	}
	return nil
}

func (m *AnswerModel) setScreen(s int) tea.Cmd {
	if s == screenForward && m.cfg.Forward == nil {
		return nil
	}
	m.screen = s
	if s == screenForward {
		m.queue.Blur()
		m.editor.Blur()
		m.detail.Blur()
		m.outcome.Blur()
		return m.fwd.Activate()
	}
	if m.cfg.Forward != nil {
		m.fwd.Deactivate()
	}
	return m.setPane(m.pane)
}

func (m AnswerModel) handleKey(msg tea.KeyMsg) (tea.Model, tea.Cmd) {
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
		return m, m.setScreen(1 - m.screen)
	}
	if !m.editing() {
		switch {
		case key.Matches(msg, k.QuitLetter):
			// Quitting answers the waiting calls UNAVAILABLE and cancels
			// the forward calls in flight: ask first.
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
		case key.Matches(msg, k.Calls):
			return m, m.setScreen(screenCalls)
		case key.Matches(msg, k.Forward):
			return m, m.setScreen(screenForward)
		}
	}
	if m.screen == screenForward {
		var cmd tea.Cmd
		m.fwd, cmd = m.fwd.Update(msg)
		return m, cmd
	}
	return m.callKey(msg)
}

// callKey handles a key on the call screen.
func (m AnswerModel) callKey(msg tea.KeyMsg) (tea.Model, tea.Cmd) {
	k := m.keys
	typing := m.editing()
	cv, hasCall := m.selected()
	open := hasCall && cv.state.Open()

	// The error form owns its keys (tab, esc, ctrl+s) while it is focused.
	if m.errOpen && m.pane == paneEditor {
		var cmd tea.Cmd
		m.errForm, cmd = m.errForm.Update(msg)
		return m, cmd
	}
	switch {
	case key.Matches(msg, k.NextPane):
		return m, m.setPane((m.pane + 1) % paneCount)
	case key.Matches(msg, k.PrevPane):
		return m, m.setPane((m.pane + paneCount - 1) % paneCount)
	case key.Matches(msg, k.Send), !typing && key.Matches(msg, k.SendLetter):
		if open {
			return m, cv.call.Reply(m.editor.Value())
		}
		return m, m.noCall(hasCall)
	case key.Matches(msg, k.Error), !typing && key.Matches(msg, k.ErrorLetter):
		if !open {
			return m, m.noCall(hasCall)
		}
		if !m.errOpen {
			m.errFrom = m.pane
		}
		m.errOpen = true
		m.layout()
		return m, m.setPane(paneEditor)
	case key.Matches(msg, k.Script), !typing && key.Matches(msg, k.ScriptLetter):
		if open {
			return m, cv.call.Delegate()
		}
		return m, m.noCall(hasCall)
	case key.Matches(msg, k.End), !typing && key.Matches(msg, k.EndLetter):
		if open {
			return m, cv.call.End()
		}
		return m, m.noCall(hasCall)
	case key.Matches(msg, k.Leave) && m.pane != paneQueue:
		return m, m.setPane(paneQueue)
	case !typing && key.Matches(msg, k.Transport):
		m.transport = !m.transport
		m.showSelected()
		return m, nil
	case !typing && m.pane == paneQueue && key.Matches(msg, k.Edit):
		return m, m.setPane(paneEditor)
	}
	var cmd tea.Cmd
	switch m.pane {
	case paneQueue:
		m.queue, cmd = m.queue.Update(msg)
		m.showSelected()
	case paneDetail:
		m.detail, cmd = m.detail.Update(msg)
	case paneEditor:
		if m.replying() {
			m.editor, cmd = m.editor.Update(msg)
		} else {
			m.outcome, cmd = m.outcome.Update(msg)
		}
	}
	return m, cmd
}

// noCall explains why an action did nothing.
func (m *AnswerModel) noCall(hasCall bool) tea.Cmd {
	if hasCall {
		it, _ := m.queue.Selected()
		m.editor.SetError(fmt.Errorf("call #%d is over (%s); pick a pending one", it.ID, it.State))
	} else {
		m.editor.SetError(fmt.Errorf("no reverse call to answer yet"))
	}
	return nil
}

// quitQuestion says what quitting now would do to calls in flight; ""
// when nothing is in flight.
func (m AnswerModel) quitQuestion() string {
	var parts []string
	if n := m.queue.Pending(); n > 0 {
		parts = append(parts, fmt.Sprintf("%d waiting %s get UNAVAILABLE", n, words.Plural(n, "call", "calls")))
	}
	if n := m.fwd.InFlight(); n > 0 {
		parts = append(parts, fmt.Sprintf("%d forward %s in flight %s cancelled", n, words.Plural(n, "call", "calls"), words.Plural(n, "is", "are")))
	}
	if len(parts) == 0 {
		return ""
	}
	return "press q again to quit (" + strings.Join(parts, ", ") + "); any other key stays"
}

// Pending returns the number of calls still waiting for an answer.
func (m AnswerModel) Pending() int { return m.queue.Pending() }
