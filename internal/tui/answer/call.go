package answer

import (
	"context"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/dynamic"
)

// State is where a reverse call stands.
type State int

// States of a call. A call starts Pending (or Delegated when the script
// took it over) and ends in one of the others.
const (
	// Pending: the call waits for a person (a streaming call stays
	// Pending while messages flow, until it is ended).
	Pending State = iota + 1
	// Delegated: the script is answering the call.
	Delegated
	// Answered: a person ended the call (with OK or an error).
	Answered
	// Scripted: the script answered the call.
	Scripted
	// Expired: the call's deadline passed before it was answered.
	Expired
	// Cancelled: the caller gave up before the call was answered.
	Cancelled
	// Abandoned: the TUI closed before the call was answered.
	Abandoned
	// Lost: the connection that brought the call went away before it was
	// answered (the server stopped or crashed).
	Lost
)

// String names the state for people.
func (s State) String() string {
	switch s {
	case Pending:
		return "pending"
	case Delegated:
		return "script"
	case Answered:
		return "answered"
	case Scripted:
		return "scripted"
	case Expired:
		return "expired"
	case Cancelled:
		return "cancelled"
	case Abandoned:
		return "abandoned"
	case Lost:
		return "lost"
	}
	return "unknown"
}

// Open reports whether the call can still be answered.
func (s State) Open() bool { return s == Pending }

// Answerer says who sent a response.
type Answerer int

// Who answers.
const (
	// Person: someone in the TUI.
	Person Answerer = iota + 1
	// Script: a rule of the loaded script.
	Script
)

// String returns "you" or "script".
func (a Answerer) String() string {
	if a == Script {
		return "script"
	}
	return "you"
}

// Action is what a person did to a call.
type Action int

// Actions on a call.
const (
	// ActionReply sends a response message (and, for a method that returns
	// one message, ends the call with OK).
	ActionReply Action = iota + 1
	// ActionEnd ends a call whose responses were sent, with OK.
	ActionEnd
	// ActionFail ends the call with an error status.
	ActionFail
	// ActionDelegate lets the script answer the call.
	ActionDelegate
)

// String names the action.
func (a Action) String() string {
	switch a {
	case ActionReply:
		return "reply"
	case ActionEnd:
		return "end"
	case ActionFail:
		return "error"
	case ActionDelegate:
		return "script"
	}
	return "unknown"
}

// Call is one reverse call waiting in the queue. Its exported fields do not
// change; what happens to the call later is reported by messages that carry
// its ID. Its methods return tea.Cmds and are safe to use from the program.
type Call struct {
	// ID numbers the Responder's calls from 1.
	ID uint64
	// Method is the called method.
	Method protoreflect.MethodDescriptor
	// Metadata is the request metadata (never nil).
	Metadata metadata.MD
	// Peer is who called.
	Peer calls.Peer
	// Arrived is when the call arrived.
	Arrived time.Time
	// Deadline is the call's deadline; zero when it has none.
	Deadline time.Time

	r         *Responder
	inner     dynamic.Call
	decisions chan decision
	done      chan struct{} // closed when the call has ended

	mu       sync.Mutex
	reqs     []proto.Message
	recvErr  error         // io.EOF after the half-close, or why Recv failed
	more     chan struct{} // closed and replaced when reqs or recvErr change
	sent     []proto.Message
	header   metadata.MD
	trailer  metadata.MD
	nextRecv int // next message the script's Recv returns
}

// ServerStreams reports whether the method returns a stream, so several
// responses may be sent before the call is ended.
func (c *Call) ServerStreams() bool { return c.Method.IsStreamingServer() }

// ClientStreams reports whether the caller sends a stream of requests.
func (c *Call) ClientStreams() bool { return c.Method.IsStreamingClient() }

// pump reads the caller's messages as they arrive and reports them.
func (c *Call) pump() {
	first := true
	for {
		msg, err := c.inner.Recv()
		c.mu.Lock()
		if err != nil {
			c.recvErr = err
		} else {
			c.reqs = append(c.reqs, msg)
		}
		close(c.more)
		c.more = make(chan struct{})
		c.mu.Unlock()
		if err != nil {
			if err == io.EOF {
				c.r.publish(HalfClosedMsg{ID: c.ID})
			}
			return
		}
		c.r.publish(ReceivedMsg{ID: c.ID, Msg: msg})
		if first && !c.ClientStreams() {
			c.r.publishMatch(c, msg)
		}
		first = false
	}
}

// received returns the messages read so far and marks them as seen by the
// script.
func (c *Call) takeReceived() []proto.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nextRecv = len(c.reqs)
	return append([]proto.Message(nil), c.reqs...)
}

func (c *Call) recordSent(msg proto.Message) {
	c.mu.Lock()
	c.sent = append(c.sent, msg)
	c.mu.Unlock()
}

func (c *Call) sentCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.sent)
}

// scriptCall is the view of the call that the script answers: requests
// come from the pump (those received before the hand-over are given to
// RespondReceived), responses and metadata are reported as they go out.
type scriptCall struct {
	c *Call
}

func (s scriptCall) Context() context.Context              { return s.c.inner.Context() }
func (s scriptCall) Method() protoreflect.MethodDescriptor { return s.c.Method }
func (s scriptCall) Metadata() metadata.MD                 { return s.c.Metadata }
func (s scriptCall) Peer() calls.Peer                      { return s.c.Peer }

func (s scriptCall) SetHeader(md metadata.MD) error {
	s.addHeader(md)
	return s.c.inner.SetHeader(md)
}

func (s scriptCall) SendHeader(md metadata.MD) error {
	s.addHeader(md)
	return s.c.inner.SendHeader(md)
}

func (s scriptCall) SetTrailer(md metadata.MD) {
	s.c.mu.Lock()
	s.c.trailer = metadata.Join(s.c.trailer, md)
	s.c.mu.Unlock()
	s.c.inner.SetTrailer(md)
}

func (s scriptCall) addHeader(md metadata.MD) {
	s.c.mu.Lock()
	s.c.header = metadata.Join(s.c.header, md)
	s.c.mu.Unlock()
}

func (s scriptCall) Send(msg proto.Message) error {
	if err := s.c.inner.Send(msg); err != nil {
		return err
	}
	s.c.recordSent(msg)
	s.c.r.publish(SentMsg{ID: s.c.ID, Msg: msg, By: Script})
	return nil
}

// Recv returns the messages that arrive after the hand-over, in order.
func (s scriptCall) Recv() (proto.Message, error) {
	ctx := s.c.inner.Context()
	for {
		s.c.mu.Lock()
		if s.c.nextRecv < len(s.c.reqs) {
			msg := s.c.reqs[s.c.nextRecv]
			s.c.nextRecv++
			s.c.mu.Unlock()
			return msg, nil
		}
		if err := s.c.recvErr; err != nil {
			s.c.mu.Unlock()
			return nil, err
		}
		more := s.c.more
		s.c.mu.Unlock()
		select {
		case <-more:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
