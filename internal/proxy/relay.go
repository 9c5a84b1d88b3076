package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// relayDesc describes every relayed call: on the wire, all four kinds of
// call are a stream of messages each way, and the proxy relays them as such.
var relayDesc = grpc.StreamDesc{ServerStreams: true, ClientStreams: true}

// relay carries one call between the caller, whose call the proxy
// received as in, and the callee, on a new call on target: metadata,
// messages both ways in order, half-close, response header, trailer and
// status with its details. The caller's deadline and cancellation reach
// the callee through the context; each side's flow control reaches the
// other, since the proxy holds at most one message each way.
type relay struct {
	p *Proxy
	l *link
	c *Call
	// in is the caller's call; caller is in as the relay uses it,
	// recording what the caller sends and is sent.
	in     grpc.ServerStream
	caller frameStream
	target func() (grpc.ClientConnInterface, error)

	// mu guards the message record of c while the request pump may still
	// be running; sealed stops it from recording after the call ended.
	mu     sync.Mutex
	sealed bool
	kept   [2]int // bytes kept of requests and responses
}

// outcome says how a relayed call ended.
type outcome int

const (
	// answered: the callee's status (whatever its code).
	answered outcome = iota
	// callerEnded: the caller cancelled, its deadline passed, or it went
	// away.
	callerEnded
	// unreachable: the proxy could not reach the callee.
	unreachable
	// refused: the proxy ended the call itself (a message it could not
	// relay).
	refused
	// tampered: a Tamper answered the call without the callee.
	tampered
)

// run relays the call and returns what the handler returns to the
// caller.
func (r *relay) run() error {
	ctx := r.in.Context()
	c := r.c
	r.caller = &recordingStream{ServerStream: r.in, r: r}
	r.p.obs.CallStarted(c)
	callerLosses, calleeLosses := r.l.lossCount(c.Caller()), r.l.lossCount(c.Callee())

	st, how, handled := r.tamper(ctx)
	if !handled {
		st, how = r.call(ctx, r.caller)
	}

	r.mu.Lock()
	r.sealed = true
	r.mu.Unlock()
	callerLost := r.l.lossCount(c.Caller()) > callerLosses
	calleeLost := r.l.lossCount(c.Callee()) > calleeLosses
	if how == answered && st.Code() != codes.OK && callerLost {
		// The caller's connection went away and took the call with it:
		// what came back is gRPC's report of the proxy giving up.
		how = callerEnded
	}
	switch how {
	case callerEnded:
		c.EndedBy, c.Gone = c.Caller(), callerLost
		if !callerLost && r.p.stopping.Load() && ctx.Err() != nil {
			c.EndedBy = SideProxy
		}
		switch {
		case ctx.Err() != nil:
			st = status.FromContextError(ctx.Err())
		default:
			st = status.New(codes.Canceled, "bcctl proxy: the "+c.Caller().String()+" went away")
		}
	case unreachable:
		c.EndedBy = c.Callee()
	case refused, tampered:
		c.EndedBy = SideProxy
	case answered:
		if st.Code() != codes.OK && calleeLost {
			// The callee's connection went away under the call: the
			// status is gRPC's report of that, not the callee's answer.
			c.EndedBy, c.Gone = c.Callee(), true
		}
	}
	c.Status = st
	c.End = time.Now()
	r.p.obs.CallEnded(c)
	return st.Err()
}

// tamper lets the Tamper handle the call, if there is one. It answers the
// call itself, or relays it (possibly changed) with the relay function it
// is given; handled is false when it leaves the call to the plain relay.
func (r *relay) tamper(ctx context.Context) (st *status.Status, how outcome, handled bool) {
	t := r.p.cfg.Tamper
	if t == nil {
		return nil, 0, false
	}
	relayed := false
	var relaySt *status.Status
	var relayHow outcome
	relayFn := func(s Stream) error {
		if relayed {
			return status.Error(codes.Internal, "bcctl proxy: a call can be relayed once")
		}
		relayed = true
		relaySt, relayHow = r.call(ctx, &streamFrames{s: s})
		if relaySt == nil {
			return status.FromContextError(context.Cause(ctx)).Err()
		}
		return relaySt.Err()
	}
	handled, err := t.Tamper(r.c, &frameBytes{fs: r.caller}, relayFn)
	if !handled {
		return nil, 0, false
	}
	r.c.Tampered = true
	st = status.Convert(err)
	switch {
	case ctx.Err() != nil && (st.Code() == codes.Canceled || st.Code() == codes.DeadlineExceeded):
		return st, callerEnded, true
	case relayed && relayHow != answered:
		return st, relayHow, true
	case relayed:
		if st.Code() != relaySt.Code() || st.Message() != relaySt.Message() {
			r.c.Changed = true
		}
		return st, answered, true
	}
	return st, tampered, true
}

// call makes the call to the callee, relays it to and from in, and says
// how it ended. When the callee answered, its trailer has been set on in.
func (r *relay) call(ctx context.Context, in frameStream) (*status.Status, outcome) {
	c := r.c
	md := c.Metadata
	target, err := r.target()
	if err != nil {
		return status.New(codes.Unavailable, fmt.Sprintf("bcctl proxy: %s: %v", r.p.calleeName(c), err)), unreachable
	}
	outCtx, cancel := context.WithCancel(metadata.NewOutgoingContext(ctx, outgoingMetadata(md)))
	defer cancel()

	var pr peer.Peer
	// The codec is chosen per call: the connections also carry calls of
	// bcctl's own (reflection, the admin API's reverse calls).
	opts := []grpc.CallOption{grpc.ForceCodecV2(rawCodec{}), grpc.Peer(&pr)}
	if sub := contentSubtype(md); sub != "" {
		opts = append(opts, grpc.CallContentSubtype(sub))
	}
	c.OutStart = time.Now()
	out, err := target.NewStream(outCtx, &relayDesc, c.Method, opts...)
	if err != nil {
		c.OutEnd = time.Now()
		return r.notReached(ctx, err)
	}

	requestsDone := make(chan error, 1)
	go func() {
		err := r.relayRequests(in, out)
		requestsDone <- err
		if err != nil {
			cancel()
		}
	}()

	st, callerErr := r.relayResponses(in, out)
	c.OutEnd = time.Now()
	switch {
	case callerErr != nil || ctx.Err() != nil:
		return nil, callerEnded
	case outCtx.Err() != nil:
		// The proxy cancelled the callee's call because relaying a request
		// failed: the request pump says why.
		if err := <-requestsDone; err != nil {
			return status.Convert(err), refused
		}
	case pr.Addr == nil:
		return r.notReached(ctx, st.Err())
	}
	if tr := out.Trailer(); len(tr) > 0 {
		in.SetTrailer(tr)
	}
	return st, answered
}

// notReached returns the status of a call the callee never received: the
// proxy could not reach it. The message names what the proxy tried to
// reach, so the caller sees the reason.
func (r *relay) notReached(ctx context.Context, err error) (*status.Status, outcome) {
	if ctx.Err() != nil {
		return nil, callerEnded
	}
	st := status.Convert(err)
	return status.New(codes.Unavailable, fmt.Sprintf("bcctl proxy: %s: %s", r.p.calleeName(r.c), st.Message())), unreachable
}

// relayRequests copies the caller's messages to the callee until the
// caller half-closes, and passes the half-close on. It returns an error
// when the caller's stream failed (the caller went away, or sent a message
// the proxy refuses) or the callee refused a message; nil when the caller
// half-closed or the callee ended the call.
func (r *relay) relayRequests(in frameStream, out grpc.ClientStream) error {
	var f frame
	for {
		if err := in.RecvMsg(&f); err != nil {
			if errors.Is(err, io.EOF) {
				return out.CloseSend()
			}
			return err
		}
		if err := out.SendMsg(&f); err != nil {
			f.release()
			if errors.Is(err, io.EOF) {
				return nil // the callee ended the call: its status tells
			}
			return err
		}
	}
}

// relayResponses passes the callee's response header, then its messages,
// to the caller, until the callee ends the call. It returns the callee's
// status, or the error of the caller's stream when the caller went away.
func (r *relay) relayResponses(in frameStream, out grpc.ClientStream) (*status.Status, error) {
	// Header blocks until the header arrives or the call ends without one
	// (then it is nil, and the status comes from RecvMsg).
	if hdr, err := out.Header(); err == nil && hdr != nil {
		if err := in.SendHeader(hdr); err != nil {
			return nil, err
		}
	}
	var f frame
	for {
		if err := out.RecvMsg(&f); err != nil {
			if errors.Is(err, io.EOF) {
				return status.New(codes.OK, ""), nil
			}
			return status.Convert(err), nil
		}
		if err := in.SendMsg(&f); err != nil {
			f.release()
			return nil, err
		}
	}
}

// record counts a message of the call (0: a request, 1: a response) and
// keeps a copy as far as Config.KeepMessages allows.
func (r *relay) record(f *frame, way int) {
	n := f.Len()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sealed {
		return
	}
	c := r.c
	if way == 0 {
		c.RequestCount++
		c.RequestBytes += int64(n)
	} else {
		c.ResponseCount++
		c.ResponseBytes += int64(n)
	}
	if r.kept[way]+n > r.p.cfg.KeepMessages {
		return
	}
	r.kept[way] += n
	if way == 0 {
		c.Requests = append(c.Requests, f.data.Materialize())
	} else {
		c.Responses = append(c.Responses, f.data.Materialize())
	}
}

// outgoingMetadata is the caller's metadata as the callee gets it: without
// the HTTP/2 pseudo-headers and the headers gRPC sets for each connection
// (content type, user agent, accepted encodings).
func outgoingMetadata(md metadata.MD) metadata.MD {
	out := make(metadata.MD, len(md))
	for k, v := range md {
		if strings.HasPrefix(k, ":") {
			continue
		}
		switch k {
		case "content-type", "user-agent", "grpc-accept-encoding", "te":
			continue
		}
		out[k] = v
	}
	return out
}

// contentSubtype returns the subtype of the caller's content type
// ("application/grpc+json" gives "json"); "" for plain application/grpc.
func contentSubtype(md metadata.MD) string {
	for _, ct := range md.Get("content-type") {
		if _, sub, ok := strings.Cut(ct, "+"); ok {
			return strings.ToLower(sub)
		}
		if _, sub, ok := strings.Cut(ct, ";"); ok {
			return strings.ToLower(strings.TrimSpace(sub))
		}
	}
	return ""
}
