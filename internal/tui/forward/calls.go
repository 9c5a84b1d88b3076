package forward

import (
	"context"
	"errors"
	"fmt"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/tui/history"
	"github.com/bcctl/bcctl/internal/tui/msgview"
	"github.com/bcctl/bcctl/internal/words"
)

// call is one call made from the pane, in flight or over.
type call struct {
	id      int
	method  protoreflect.MethodDescriptor
	target  string
	headers metadata.MD
	timeout time.Duration
	request string // the editor's text when the call started
	started time.Time
	run     *run
	prev    int // the call shown before this one was sent

	steps   []step // what was sent and received, in order
	sent    int
	status  *status.Status
	trailer metadata.MD
	elapsed time.Duration
	failed  error
	running bool
	begun   bool // the requests were read and the call started
	sending bool // a client stream that takes more messages
	parsing bool // more messages are being parsed for the stream
}

// step is one thing that happened during a call.
type step struct {
	kind   stepKind
	msg    proto.Message
	header metadata.MD
}

type stepKind int

const (
	stepSent stepKind = iota
	stepHeader
	stepResponse
)

// entry is c as the history lists it.
func (c *call) entry() history.Entry {
	e := history.Entry{ID: c.id, Method: dynamic.MethodName(c.method), Target: c.target, Started: c.started, Elapsed: c.elapsed}
	switch {
	case c.sending:
		e.State, e.Outcome = history.Sending, fmt.Sprintf("sending (%d sent)", c.sent)
	case c.running:
		e.State, e.Outcome = history.Running, "calling…"
	case c.failed != nil:
		e.State, e.Outcome = history.Failed, "could not call"
	case c.status != nil && c.status.Code() == 0:
		e.State, e.Outcome = history.OK, "OK"
	case c.status != nil:
		e.State, e.Outcome = history.Failed, calls.CodeName(c.status.Code())
	default:
		e.State, e.Outcome = history.Failed, "not sent"
	}
	return e
}

// Send returns the tea.Cmd that sends the editor's request: on the call
// shown when it is a stream that takes more messages, else as a new call.
func (m *Model) Send() tea.Cmd {
	if m.method == nil {
		return nil
	}
	if c := m.calls[m.shown]; c != nil && c.sending && c.method == m.method {
		if c.parsing {
			return nil // the previous messages are still being read
		}
		c.parsing = true
		return queue(c.run, c.method, m.editor.Value(), m.cfg.Source.Types())
	}
	headers, err := ParseHeaders(m.meta.Value())
	if err != nil {
		m.editor.SetError(err)
		return nil
	}
	timeout, err := ParseTimeout(m.deadline.Value())
	if err != nil {
		m.editor.SetError(err)
		return nil
	}
	m.lastID++
	c := &call{
		id: m.lastID, method: m.method, target: m.cfg.Target, headers: headers, timeout: timeout,
		request: m.editor.Value(), started: m.cfg.Now(), running: true,
		sending: m.method.IsStreamingClient(), prev: m.shown,
	}
	c.run = newRun(c.id)
	m.calls[c.id] = c
	m.history.Upsert(c.entry())
	m.show(c.id)
	if m.method.IsStreamingServer() || m.method.IsStreamingClient() {
		m.resp.Follow() // keep the newest message in view
	}
	m.editor.SetNote("")
	return start(c.run, m.flights, callSpec{
		inv: m.cfg.Invoker, method: m.method, headers: headers, timeout: timeout,
		text: m.editor.Value(), resolver: m.cfg.Source.Types(),
	})
}

// EndSend half-closes the stream of the call shown: the server is told
// no more messages come.
func (m *Model) EndSend() {
	if c := m.calls[m.shown]; c != nil && c.sending {
		c.sending = false
		c.run.endSending()
		m.refresh(c)
	}
}

// Cancel cancels the call shown, when it is in flight.
func (m *Model) Cancel() {
	if c := m.calls[m.shown]; c != nil && c.running {
		c.sending = false
		c.run.stop()
	}
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

// show makes the response view show call id (0: none).
func (m *Model) show(id int) {
	m.shown = id
	m.resp.Reset(m.sections())
}

// load shows call id, and puts its method, request, metadata and
// deadline back in the editor, to be edited and sent again.
func (m *Model) load(id int) tea.Cmd {
	c := m.calls[id]
	if c == nil {
		return nil
	}
	m.method = c.method
	m.editor.SetValue(c.request)
	m.meta.SetValue(FormatHeaders(c.headers))
	m.deadline.SetValue(FormatTimeout(c.timeout))
	m.show(id)
	m.layout()
	return m.setFocus(FocusEditor)
}

// refresh redraws what shows c after it changed.
func (m *Model) refresh(c *call) {
	m.history.Upsert(c.entry())
	if c.id == m.shown {
		m.resp.SetSections(m.sections())
	}
}

// event applies an event of call id and waits for the next one.
func (m Model) event(id int, apply func(c *call)) (Model, tea.Cmd) {
	c := m.calls[id]
	if c == nil {
		return m, nil
	}
	apply(c)
	m.refresh(c)
	return m, c.run.next()
}

// callEvent handles the messages of the calls in flight; ok is false for
// other messages.
func (m Model) callEvent(msg tea.Msg) (Model, tea.Cmd, bool) {
	switch msg := msg.(type) {
	case RequestErrorMsg:
		c := m.calls[msg.Run]
		if c == nil {
			return m, nil, true
		}
		if c.parsing { // more messages for an open stream: it stays open
			c.parsing = false
		} else { // the call was not made: it is not history
			delete(m.calls, c.id)
			m.history.Remove(c.id)
			if m.lastID == c.id {
				m.lastID--
			}
			m.show(c.prev)
		}
		m.editor.SetError(msg.Err)
		return m, m.setFocus(FocusEditor), true
	case QueuedMsg:
		if c := m.calls[msg.Run]; c != nil {
			c.parsing = false
			for _, q := range msg.Requests {
				c.run.out.Put(q)
			}
			m.editor.SetNote(fmt.Sprintf("%d more %s queued on call #%d", len(msg.Requests), words.Plural(len(msg.Requests), "message", "messages"), c.id))
		}
		return m, nil, true
	case StartedMsg:
		m, cmd := m.event(msg.Run, func(c *call) { c.headers, c.begun = msg.Headers, true })
		return m, cmd, true
	case SentMsg:
		m, cmd := m.event(msg.Run, func(c *call) {
			c.sent++
			c.steps = append(c.steps, step{kind: stepSent, msg: msg.Msg})
		})
		return m, cmd, true
	case HeaderMsg:
		m, cmd := m.event(msg.Run, func(c *call) { c.steps = append(c.steps, step{kind: stepHeader, header: msg.MD}) })
		return m, cmd, true
	case ResponseMsg:
		m, cmd := m.event(msg.Run, func(c *call) { c.steps = append(c.steps, step{kind: stepResponse, msg: msg.Msg}) })
		return m, cmd, true
	case TrailerMsg:
		m, cmd := m.event(msg.Run, func(c *call) {
			c.status, c.trailer, c.elapsed = msg.Status, msg.MD, msg.Elapsed
			c.running, c.sending = false, false
		})
		return m, cmd, true
	case FailedMsg:
		m, cmd := m.event(msg.Run, func(c *call) {
			c.failed, c.running, c.sending = msg.Err, false, false
		})
		return m, cmd, true
	case runDoneMsg:
		if c := m.calls[msg.Run]; c != nil && (c.running || c.sending) {
			c.running, c.sending = false, false
			if c.status == nil && c.failed == nil {
				c.failed = errors.New("the call ended without a status")
			}
			m.refresh(c)
		}
		return m, nil, true
	}
	return m, nil, false
}

// sections renders the call shown for the response view: what was sent
// on a stream and what came back, in order, then the status and the
// trailers.
func (m Model) sections() []msgview.Section {
	c := m.calls[m.shown]
	if c == nil {
		body := "nothing sent yet"
		if m.cfg.Target != "" {
			body += " to " + m.cfg.Target
		}
		return []msgview.Section{{Title: "Response", Body: body + " (ctrl+s sends; ctrl+r shows the calls made)", Tone: "muted"}}
	}
	types := m.cfg.Source.Types()
	var out []msgview.Section
	if c.failed != nil {
		out = append(out, msgview.Section{Title: "Could not call", Body: c.failed.Error(), Tone: "error"})
	}
	streams := c.method.IsStreamingServer()
	sent, received := 0, 0
	for _, s := range c.steps {
		switch s.kind {
		case stepSent:
			sent++
			if c.method.IsStreamingClient() {
				out = append(out, msgview.Section{Title: fmt.Sprintf("Sent %d", sent), Body: msgview.JSON(s.msg, types, m.cfg.Bytes), Tone: "muted"})
			}
		case stepHeader:
			out = append(out, msgview.Section{Title: "Response headers", Body: msgview.Metadata(s.header)})
		case stepResponse:
			received++
			title := "Response"
			if streams {
				title = fmt.Sprintf("Response %d", received)
			}
			out = append(out, msgview.Section{Title: title, Body: msgview.JSON(s.msg, types, m.cfg.Bytes)})
		}
	}
	switch {
	case c.sending:
		out = append(out, msgview.Section{Title: "Status", Tone: "muted",
			Body: "the stream is open: ctrl+s sends the editor's messages, ctrl+o ends sending"})
	case c.running && !c.begun:
		out = append(out, msgview.Section{Title: "Status", Body: "reading the request…", Tone: "muted"})
	case c.running:
		out = append(out, msgview.Section{Title: "Status", Body: "waiting for the call to end…", Tone: "muted"})
	}
	if c.status != nil {
		out = append(out, msgview.Section{
			Title: fmt.Sprintf("Status (%s)", c.elapsed.Round(time.Millisecond)),
			Body:  msgview.Status(c.status, types), Tone: msgview.StatusTone(c.status),
		})
	}
	if c.trailer != nil {
		out = append(out, msgview.Section{Title: "Trailers", Body: msgview.Metadata(c.trailer)})
	}
	return out
}
