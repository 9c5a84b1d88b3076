package serve

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/script"
)

// ErrUnknownPeer is wrapped by the errors of CallPeer and PeerSource for a
// peer ID that is not connected.
var ErrUnknownPeer = errors.New("no such peer")

// PeerCall is a reverse call to make on a peer's backchannel.
type PeerCall struct {
	// Peer is the backchannel ID of the peer to call.
	Peer backchannel.ID
	// Method is "pkg.Svc/Method" (or any spelling dynamic.FindMethod
	// takes).
	Method string
	// Request is the request in JSON: one value, or for client-streaming
	// and bidi methods any number of concatenated values. Empty means one
	// empty message.
	Request []byte
	// Metadata is sent as request metadata.
	Metadata metadata.MD
	// Timeout bounds the call (default script.DefaultCallTimeout).
	Timeout time.Duration
	// By says who asks (ByAdmin when empty): it goes into the journal.
	By Maker
}

// CallPeer makes a reverse call on a peer's backchannel and records it in
// the journal (and for the expectations) like the script's own calls. The
// method is looked up in the peer schema, then by reflection over the
// peer's backchannel.
//
// The returned error is about the call that could not be made: an unknown
// peer (ErrUnknownPeer), an unknown method (dynamic.ErrNotFound, naming the
// methods that exist), a request that does not fit (*dynamic.FieldError).
// The call's own outcome, OK or not, is in the Event's Call.Status.
func (s *Server) CallPeer(ctx context.Context, pc PeerCall) (*Event, error) {
	conn, err := s.peerConn(pc.Peer)
	if err != nil {
		return nil, fmt.Errorf("serve: call peer: %s: %w", s.notConnected(pc.Peer), ErrUnknownPeer)
	}
	info, _ := s.reg.Peer(pc.Peer)
	md, types, err := s.findPeerMethod(ctx, pc.Peer, pc.Method)
	if err != nil {
		return nil, fmt.Errorf("serve: call peer %d: %w", pc.Peer, err)
	}
	parser := dynamic.NewJSONRequestParser(bytes.NewReader(pc.Request), types)
	var requests []proto.Message
	// Parse every request first, so that a bad one is an error before
	// anything is sent.
	for {
		msg := newMessage(md.Input())
		if err := parser.Next(msg); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("serve: call peer %d: %s: %w", pc.Peer, dynamic.MethodName(md), err)
		}
		requests = append(requests, msg)
	}
	if !md.IsStreamingClient() && len(requests) > 1 {
		return nil, fmt.Errorf("serve: call peer %d: %s: %d requests: %w", pc.Peer, dynamic.MethodName(md), len(requests), dynamic.ErrTooManyRequests)
	}
	timeout := pc.Timeout
	if timeout <= 0 {
		timeout = script.DefaultCallTimeout
	}
	by := pc.By
	if by == "" {
		by = ByAdmin
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	h := &captureHandler{}
	sent := make([]proto.Message, 0, len(requests))
	next := 0
	supply := func(msg proto.Message) error {
		if next >= len(requests) {
			return io.EOF
		}
		proto.Merge(msg, requests[next])
		sent = append(sent, requests[next])
		next++
		return nil
	}
	mdOut := pc.Metadata
	if mdOut == nil {
		mdOut = metadata.MD{}
	}
	start := time.Now()
	err = dynamic.Invoke(cctx, conn, md, mdOut, h, supply)
	if err != nil {
		return nil, fmt.Errorf("serve: call peer %d: %w", pc.Peer, err)
	}
	if len(sent) == 0 && !md.IsStreamingClient() {
		sent = append(sent, newMessage(md.Input())) // Invoke sent an empty one
	}
	st := h.status
	if st == nil {
		st = status.New(0, "")
	}
	ev := &calls.Event{
		Dir: calls.Reverse, Origin: calls.Made,
		Peer:   calls.Peer{Addr: addrString(info.RemoteAddr), BackchannelID: uint64(pc.Peer)},
		Method: dynamic.MethodName(md), Metadata: mdOut, Header: h.header, Trailer: h.trailer,
		Requests: sent, Responses: h.responses, Status: st, Start: start, Duration: time.Since(start),
	}
	s.engine.Count(ev.Record())
	return s.record(ev, 0, 0, by, types), nil
}

// findPeerMethod resolves a method of a peer's backchannel: in the peer
// schema, else by the peer's reflection. types resolves the method's
// messages (and Any inside them) without further I/O.
func (s *Server) findPeerMethod(ctx context.Context, id backchannel.ID, name string) (protoreflect.MethodDescriptor, dynamic.TypeResolver, error) {
	md, err := dynamic.FindMethod(ctx, s.cfg.PeerSchema, name)
	if err == nil {
		return md, s.cfg.PeerSchema.Types(), nil
	}
	if !errors.Is(err, dynamic.ErrNotFound) {
		return nil, nil, err
	}
	if v, ok := s.peers.get(id); ok && v.Discovery == DiscoveryNotServed {
		return nil, nil, err
	}
	src, serr := s.PeerSource(ctx, id)
	if serr != nil {
		return nil, nil, err
	}
	defer src.Close()
	rmd, rerr := dynamic.FindMethod(ctx, src, name)
	if rerr != nil {
		return nil, nil, err // the schema's error names what it knows
	}
	files, ferr := dynamic.NewSourceFromFiles(rmd.ParentFile())
	if ferr != nil {
		return nil, nil, ferr
	}
	return rmd, dynamic.ChainTypes(files.Types(), s.cfg.PeerSchema.Types()), nil
}

// PeerSource returns a schema of peer id's backchannel: the peer's own
// reflection first, then the peer schema. Close it when done; it must not
// outlive the peer's connection.
func (s *Server) PeerSource(ctx context.Context, id backchannel.ID) (dynamic.Source, error) {
	conn, err := s.reg.Backchannel(id)
	if err != nil {
		return nil, fmt.Errorf("serve: %s: %w", s.notConnected(id), ErrUnknownPeer)
	}
	if v, ok := s.peers.get(id); ok && v.Discovery == DiscoveryNotServed {
		return dynamic.NewCompositeSource(s.cfg.PeerSchema), nil
	}
	return dynamic.NewCompositeSource(dynamic.NewSourceFromReflection(ctx, conn, nil), s.cfg.PeerSchema), nil
}

func newMessage(md protoreflect.MessageDescriptor) proto.Message {
	return dynamicpb.NewMessage(md)
}

// captureHandler keeps what an invocation reports.
type captureHandler struct {
	header, trailer metadata.MD
	responses       []proto.Message
	status          *status.Status
}

func (h *captureHandler) OnResolveMethod(protoreflect.MethodDescriptor) {}
func (h *captureHandler) OnSendHeaders(metadata.MD)                     {}
func (h *captureHandler) OnReceiveHeaders(md metadata.MD)               { h.header = md }
func (h *captureHandler) OnReceiveResponse(msg proto.Message)           { h.responses = append(h.responses, msg) }
func (h *captureHandler) OnReceiveTrailers(st *status.Status, md metadata.MD) {
	h.status, h.trailer = st, md
}
