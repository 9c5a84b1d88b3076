package answer

import (
	"context"
	"errors"
	"sync"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/script"
	"github.com/bcctl/bcctl/internal/tui/internal/mailbox"
)

// Options configure a Responder. Every field is optional.
type Options struct {
	// Script answers the calls a person hands to it (Delegate), and the
	// calls that arrive after the Responder is closed. Without one, calls
	// can only be answered by hand.
	Script *script.Engine
	// Observer is told of every call the Responder ends itself: answered
	// by a person, expired, cancelled or abandoned (the script reports the
	// calls it answers to its own observer). It is where those calls are
	// journaled and counted for the script's expectations (Engine.Count).
	Observer calls.Observer
	// Resolver resolves the types inside google.protobuf.Any in replies and
	// error details; nil means the program's registry.
	Resolver dynamic.TypeResolver
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Gone reports whether the connection that brings the calls has gone
	// away (host.Conn's BackchannelClosed). A pending call whose context
	// ends while Gone is true ended with the connection, not because its
	// caller gave up: it is Lost. nil means never.
	Gone func() bool
}

// Responder queues the reverse calls it is given for a person to answer.
// It is a dynamic.Responder; Respond blocks each call until it is answered,
// its deadline passes, or the Responder is closed.
type Responder struct {
	opts     Options
	resolver dynamic.TypeResolver

	box *mailbox.Box

	mu      sync.Mutex
	closed  bool
	closing chan struct{}
	lost    chan struct{} // closed by ConnectionLost
	cause   error         // why the connection went, once lost is closed
	active  int           // calls in Respond
	nextID  uint64
}

// NewResponder returns a Responder with opts.
func NewResponder(opts Options) *Responder {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Responder{
		opts:     opts,
		resolver: detailResolver(opts.Resolver),
		box:      mailbox.New(),
		closing:  make(chan struct{}),
		lost:     make(chan struct{}),
	}
}

// ConnectionLost tells the Responder that the connection that brings the
// calls went away, and why: every call still pending ends Lost, with
// UNAVAILABLE and cause, and the program is told (LostMsg). The calls
// already in the queue stay there to be read.
func (r *Responder) ConnectionLost(cause error) {
	r.mu.Lock()
	select {
	case <-r.lost:
		r.mu.Unlock()
		return
	default:
	}
	r.cause = cause
	close(r.lost)
	r.mu.Unlock()
	r.publish(LostMsg{Cause: cause})
}

// lostStatus is the status of a call that ended with the connection.
func (r *Responder) lostStatus() *status.Status {
	r.mu.Lock()
	cause := r.cause
	r.mu.Unlock()
	if cause == nil {
		return status.New(codes.Unavailable, "the connection closed before this call was answered")
	}
	return status.Newf(codes.Unavailable, "%v before this call was answered", cause)
}

// gone reports whether the connection has gone away.
func (r *Responder) gone() bool {
	select {
	case <-r.lost:
		return true
	default:
	}
	return r.opts.Gone != nil && r.opts.Gone()
}

// HasScript reports whether calls can be handed to a script.
func (r *Responder) HasScript() bool { return r.opts.Script != nil }

// Next returns a tea.Cmd that waits for the Responder's next event:
// ArrivedMsg, ReceivedMsg, HalfClosedMsg, MatchMsg, SentMsg, DelegatedMsg,
// EndedMsg or LostMsg, and ClosedMsg once it is closed. Issue it again
// after each event; only one may be waiting at a time.
func (r *Responder) Next() tea.Cmd { return r.box.Next(ClosedMsg{}) }

// Close ends every pending call with UNAVAILABLE (the person is gone) and
// makes Next return ClosedMsg once every call's last event is delivered.
// Calls that arrive afterwards are answered by the script, or with
// UNAVAILABLE. Close does not wait for the calls to end.
func (r *Responder) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		r.closed = true
		close(r.closing)
	}
	if r.active == 0 {
		r.box.Close()
	}
}

// callDone counts a call out; the box closes after the last call ends once
// the Responder is closed, so every call's EndedMsg is delivered.
func (r *Responder) callDone() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.active--
	if r.closed && r.active == 0 {
		r.box.Close()
	}
}

func (r *Responder) publish(msg tea.Msg) { r.box.Put(msg) }

func (r *Responder) publishMatch(c *Call, req proto.Message) {
	if r.opts.Script == nil {
		return
	}
	res := r.opts.Script.Match(c.Method, c.Metadata, req)
	m := MatchMsg{ID: c.ID, Reason: res.Reason}
	if res.Rule != nil {
		m.Rule = res.Rule.String()
	}
	r.publish(m)
}

// expiryTolerance is how close to its deadline a cancelled call counts as
// expired.
const expiryTolerance = 500 * time.Millisecond

// errAbandoned is the status of calls still pending when the Responder
// closes.
var errAbandoned = status.Error(codes.Unavailable, "bcctl: the TUI was closed before this call was answered")

// Respond implements dynamic.Responder: it queues call and blocks until it
// is answered.
func (r *Responder) Respond(call dynamic.Call) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		if r.opts.Script != nil {
			return r.opts.Script.Respond(call)
		}
		return errAbandoned
	}
	r.active++
	r.nextID++
	id := r.nextID
	r.mu.Unlock()
	defer r.callDone()
	ctx := call.Context()
	md := call.Metadata()
	if md == nil {
		md = metadata.MD{}
	}
	c := &Call{
		ID: id, Method: call.Method(), Metadata: md, Peer: call.Peer(), Arrived: r.opts.Now(),
		r: r, inner: call, decisions: make(chan decision), done: make(chan struct{}),
		more: make(chan struct{}),
	}
	if dl, ok := ctx.Deadline(); ok {
		c.Deadline = dl
	}
	defer close(c.done)
	r.publish(ArrivedMsg{Call: c})
	if c.ClientStreams() {
		r.publishMatch(c, nil)
	}
	go c.pump()

	for {
		select {
		case d := <-c.decisions:
			if end, err := r.decide(c, d); end {
				return err
			}
		case <-ctx.Done():
			// When the caller's own timer fires first, its reset of the
			// stream arrives as a cancellation just before this side's
			// deadline: near the deadline, a cancellation is an expiry.
			st, state := status.New(codes.DeadlineExceeded, "the call's deadline passed before it was answered"), Expired
			switch {
			case errors.Is(ctx.Err(), context.DeadlineExceeded):
			case r.gone():
				st, state = r.lostStatus(), Lost
			case c.Deadline.IsZero() || time.Until(c.Deadline) > expiryTolerance:
				st, state = status.New(codes.Canceled, "the caller cancelled the call before it was answered"), Cancelled
			}
			r.end(c, state, st)
			return st.Err()
		case <-r.lost:
			st := r.lostStatus()
			r.end(c, Lost, st)
			return st.Err()
		case <-r.closing:
			r.end(c, Abandoned, status.Convert(errAbandoned))
			return errAbandoned
		}
	}
}

// decide carries out d on c; end reports that the call is over, with err
// as its status.
func (r *Responder) decide(c *Call, d decision) (end bool, err error) {
	switch d.action {
	case ActionReply:
		if err := c.inner.Send(d.msg); err != nil {
			d.result <- err
			st := statusOf(err)
			r.end(c, Answered, st)
			return true, err
		}
		c.recordSent(d.msg)
		r.publish(SentMsg{ID: c.ID, Msg: d.msg, By: Person})
		d.result <- nil
		if c.ServerStreams() {
			return false, nil
		}
		r.end(c, Answered, status.New(codes.OK, ""))
		return true, nil
	case ActionEnd:
		if !c.ServerStreams() && c.sentCount() == 0 {
			d.result <- ErrNeedsReply
			return false, nil
		}
		d.result <- nil
		r.end(c, Answered, status.New(codes.OK, ""))
		return true, nil
	case ActionFail:
		d.result <- nil
		r.end(c, Answered, d.status)
		return true, d.status.Err()
	case ActionDelegate:
		if r.opts.Script == nil {
			d.result <- ErrNoScript
			return false, nil
		}
		if c.sentCount() > 0 {
			d.result <- ErrAlreadyAnswering
			return false, nil
		}
		d.result <- nil
		r.publish(DelegatedMsg{ID: c.ID})
		received := c.takeReceived()
		err := r.opts.Script.RespondReceived(scriptCall{c}, received...)
		c.mu.Lock()
		header, trailer := c.header, c.trailer
		c.mu.Unlock()
		r.publish(EndedMsg{ID: c.ID, State: Scripted, Status: statusOf(err), Header: header, Trailer: trailer})
		return true, err
	}
	d.result <- errors.New("answer: unknown action")
	return false, nil
}

// end reports the end of a call that the Responder (not the script) ended.
func (r *Responder) end(c *Call, state State, st *status.Status) {
	c.mu.Lock()
	ev := &calls.Event{
		Dir: calls.Reverse, Origin: calls.Answered, Peer: c.Peer,
		Method:    dynamic.MethodName(c.Method),
		Metadata:  c.Metadata,
		Requests:  append([]proto.Message(nil), c.reqs...),
		Responses: append([]proto.Message(nil), c.sent...),
		Status:    st,
		Start:     c.Arrived,
		Duration:  r.opts.Now().Sub(c.Arrived),
	}
	c.mu.Unlock()
	r.publish(EndedMsg{ID: c.ID, State: state, Status: st})
	if r.opts.Observer != nil {
		r.opts.Observer.ObserveCall(ev)
	}
}

// statusOf is the status of err, OK (not nil) for nil.
func statusOf(err error) *status.Status {
	if err == nil {
		return status.New(codes.OK, "")
	}
	return status.Convert(err)
}
