package client

import (
	"context"
	"errors"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/journal"
)

// Invocation is a forward call for Session.Invoke.
type Invocation struct {
	// Method is the method to call.
	Method protoreflect.MethodDescriptor
	// Metadata is the request metadata.
	Metadata metadata.MD
	// Next fills in the next request and returns io.EOF after the last
	// (dynamic.Invoke's supplier).
	Next func(proto.Message) error
	// Handler, when set, is told of the call as it goes (printing).
	Handler dynamic.InvocationEventHandler
	// Sidechannel, when set, registers a sidechannel for the call.
	Sidechannel *Sidechannel
}

// ForwardCall is a forward call made with Session.Invoke, as it ended.
type ForwardCall struct {
	// Entry is its journal entry.
	Entry journal.Entry
	// Status is how it ended.
	Status *status.Status
	// Duration is how long it took.
	Duration time.Duration
	// JournalErr says why the journal file lost the entry, if it did.
	JournalErr error
	// Sidechannel is what went through the call's sidechannel (with
	// Invocation.Sidechannel).
	Sidechannel *calls.Sidechannel
	// SidechannelErr says how the sidechannel failed: a broken stream,
	// ErrSidechannelNotOpened, or a script expectation it did not meet
	// (wrapping script.ErrExpectationsFailed).
	SidechannelErr error
}

// ErrNoStatus is Invoke's error for a call that ended without a status
// and without saying why.
var ErrNoStatus = errors.New("the call ended without a status")

// Invoke makes a forward call on the session's connection, journals it
// (made by the command line) and counts it for the script's expectations.
// A call that ended without a status (a request that could not be read or
// sent) is not journaled: Invoke returns no ForwardCall, and the error
// (ErrNoStatus when there is none). Otherwise the error, if any, is the
// request that cut the call short (a bad message in a stream).
func (s *Session) Invoke(ctx context.Context, inv Invocation) (*ForwardCall, error) {
	rec := &recorder{}
	var handler dynamic.InvocationEventHandler = rec
	if inv.Handler != nil {
		handler = multiHandler{inv.Handler, rec}
	}
	next := func(msg proto.Message) error {
		err := inv.Next(msg)
		if err == nil {
			rec.addRequest(msg)
		}
		return err
	}
	var side *sidechannelCall
	if inv.Sidechannel != nil {
		var err error
		if ctx, side, err = s.startSidechannel(ctx, inv.Sidechannel); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	err := dynamic.Invoke(ctx, s.conn.ClientConn(), inv.Method, inv.Metadata, handler, next)
	took := time.Since(start)
	var sideRec *calls.Sidechannel
	var sideErr error
	if side != nil {
		sideRec, sideErr = s.finishSidechannel(side)
	}
	if !rec.ended {
		if err == nil {
			err = ErrNoStatus
		}
		return nil, err
	}
	fc := &ForwardCall{Status: rec.status, Duration: took, Sidechannel: sideRec, SidechannelErr: sideErr}
	fc.Entry, fc.JournalErr = s.journal.NewCall(journal.Call{
		Dir: journal.DirForward, Origin: journal.OriginMade, By: journal.ByCLI,
		Peer: calls.Peer{Addr: s.cfg.Target}, Method: dynamic.MethodName(inv.Method),
		Metadata: inv.Metadata, Header: rec.header, Trailer: rec.trailer,
		Requests: rec.sentRequests(), Responses: rec.responses, Status: rec.status,
		Start: start, Duration: took, Sidechannel: sideRec,
	})
	if s.engine != nil {
		r, _ := fc.Entry.Record()
		s.engine.Count(r)
	}
	return fc, err
}

// recorder keeps what happened in a forward call, for its journal entry.
type recorder struct {
	// reqMu guards requests: a bidi call's requests are read in a goroutine
	// that may outlive the call (the server ended it while bcctl waited
	// for stdin).
	reqMu     sync.Mutex
	requests  []proto.Message
	header    metadata.MD
	responses []proto.Message
	trailer   metadata.MD
	status    *status.Status
	ended     bool
}

// addRequest records a request as it is sent.
func (r *recorder) addRequest(m proto.Message) {
	r.reqMu.Lock()
	defer r.reqMu.Unlock()
	r.requests = append(r.requests, m)
}

// sentRequests returns the requests sent so far.
func (r *recorder) sentRequests() []proto.Message {
	r.reqMu.Lock()
	defer r.reqMu.Unlock()
	return append([]proto.Message(nil), r.requests...)
}

func (r *recorder) OnResolveMethod(protoreflect.MethodDescriptor) {}
func (r *recorder) OnSendHeaders(metadata.MD)                     {}
func (r *recorder) OnReceiveHeaders(md metadata.MD)               { r.header = md }
func (r *recorder) OnReceiveResponse(msg proto.Message) {
	r.responses = append(r.responses, msg)
}
func (r *recorder) OnReceiveTrailers(st *status.Status, md metadata.MD) {
	if st == nil { // status.Convert(nil): the call succeeded
		st = status.New(codes.OK, "")
	}
	r.status, r.trailer, r.ended = st, md, true
}

// multiHandler hands every event to each handler in turn.
type multiHandler []dynamic.InvocationEventHandler

func (m multiHandler) OnResolveMethod(md protoreflect.MethodDescriptor) {
	for _, h := range m {
		h.OnResolveMethod(md)
	}
}

func (m multiHandler) OnSendHeaders(md metadata.MD) {
	for _, h := range m {
		h.OnSendHeaders(md)
	}
}

func (m multiHandler) OnReceiveHeaders(md metadata.MD) {
	for _, h := range m {
		h.OnReceiveHeaders(md)
	}
}

func (m multiHandler) OnReceiveResponse(msg proto.Message) {
	for _, h := range m {
		h.OnReceiveResponse(msg)
	}
}

func (m multiHandler) OnReceiveTrailers(st *status.Status, md metadata.MD) {
	for _, h := range m {
		h.OnReceiveTrailers(st, md)
	}
}
