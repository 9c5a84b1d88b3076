package proxy

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
)

// Tamper handles calls before the proxy relays them as they are (bcctl
// proxy --script). Each call is offered to it, in the call's goroutine.
type Tamper interface {
	// Tamper answers c, whose caller is on the other end of caller, itself
	// or with relay, which passes the call on to its callee (once) through
	// the Stream it is given: caller itself, or a Stream that changes what
	// passes. It returns the call's status error (nil: OK). handled false
	// leaves the call to the plain relay; Tamper must then not have used
	// caller or relay. Tamper may set c.Rule.
	Tamper(c *Call, caller Stream, relay RelayFunc) (handled bool, err error)
}

// RelayFunc passes a call on to its callee, to and from s, and returns the
// callee's status error (or why the callee could not be reached). The
// callee's header, messages and trailer go to s.
type RelayFunc func(s Stream) error

// Stream is one end of a call as a Tamper sees it: messages as their
// bytes.
type Stream interface {
	// Context is the call's context.
	Context() context.Context
	// Recv returns the caller's next message, or io.EOF once it has
	// half-closed.
	Recv() ([]byte, error)
	// Send sends a message to the caller.
	Send(msg []byte) error
	// SetHeader adds header metadata, sent with the first message or the
	// status; SendHeader sends it now.
	SetHeader(md metadata.MD) error
	SendHeader(md metadata.MD) error
	// SetTrailer adds trailer metadata, sent with the status.
	SetTrailer(md metadata.MD)
}

// frameStream is the caller's end of a call as the relay's pumps use it.
// A grpc.ServerStream is one.
type frameStream interface {
	Context() context.Context
	RecvMsg(m any) error
	SendMsg(m any) error
	SetHeader(md metadata.MD) error
	SendHeader(md metadata.MD) error
	SetTrailer(md metadata.MD)
}

var _ frameStream = grpc.ServerStream(nil)

// recordingStream is the caller's call, recording on the Call what the
// caller sends and what it is sent: its messages (as far as
// Config.KeepMessages allows), its header and its trailer.
type recordingStream struct {
	grpc.ServerStream
	r *relay
}

func (s *recordingStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	s.r.record(m.(*frame), 0)
	return nil
}

func (s *recordingStream) SendMsg(m any) error {
	s.r.record(m.(*frame), 1)
	return s.ServerStream.SendMsg(m)
}

func (s *recordingStream) SetHeader(md metadata.MD) error {
	s.r.c.Header = metadata.Join(s.r.c.Header, md)
	return s.ServerStream.SetHeader(md)
}

func (s *recordingStream) SendHeader(md metadata.MD) error {
	s.r.c.Header = metadata.Join(s.r.c.Header, md)
	return s.ServerStream.SendHeader(md)
}

func (s *recordingStream) SetTrailer(md metadata.MD) {
	s.r.c.Trailer = metadata.Join(s.r.c.Trailer, md)
	s.ServerStream.SetTrailer(md)
}

// frameBytes is a frameStream as a Stream, for a Tamper.
type frameBytes struct {
	fs frameStream
}

func (s *frameBytes) Context() context.Context { return s.fs.Context() }

func (s *frameBytes) Recv() ([]byte, error) {
	var f frame
	if err := s.fs.RecvMsg(&f); err != nil {
		return nil, err
	}
	b := f.data.Materialize()
	f.release()
	return b, nil
}

func (s *frameBytes) Send(msg []byte) error {
	return s.fs.SendMsg(&frame{data: mem.BufferSlice{mem.SliceBuffer(msg)}})
}

func (s *frameBytes) SetHeader(md metadata.MD) error  { return s.fs.SetHeader(md) }
func (s *frameBytes) SendHeader(md metadata.MD) error { return s.fs.SendHeader(md) }
func (s *frameBytes) SetTrailer(md metadata.MD)       { s.fs.SetTrailer(md) }

// streamFrames is a Stream as a frameStream, for relaying a call a Tamper
// passes on.
type streamFrames struct {
	s Stream
}

func (s *streamFrames) Context() context.Context { return s.s.Context() }

func (s *streamFrames) RecvMsg(m any) error {
	b, err := s.s.Recv()
	if err != nil {
		return err
	}
	f, ok := m.(*frame)
	if !ok {
		return fmt.Errorf("proxy: cannot receive into %T", m)
	}
	f.data = mem.BufferSlice{mem.SliceBuffer(b)}
	return nil
}

func (s *streamFrames) SendMsg(m any) error {
	f, ok := m.(*frame)
	if !ok {
		return fmt.Errorf("proxy: cannot send %T", m)
	}
	b := f.data.Materialize()
	f.release()
	return s.s.Send(b)
}

func (s *streamFrames) SetHeader(md metadata.MD) error  { return s.s.SetHeader(md) }
func (s *streamFrames) SendHeader(md metadata.MD) error { return s.s.SendHeader(md) }
func (s *streamFrames) SetTrailer(md metadata.MD)       { s.s.SetTrailer(md) }
