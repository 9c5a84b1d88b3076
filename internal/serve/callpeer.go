package serve

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
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
	// Requests, when set, supplies the requests instead of Request, one
	// at a time while the call runs (a person sending a stream message by
	// message). A request it fails to supply ends the call with its
	// error.
	Requests dynamic.RequestSupplier
	// Events, when set, is told what happens as it happens: the response
	// headers, each response as it arrives, the status and trailers.
	Events dynamic.InvocationEventHandler
	// Metadata is sent as request metadata.
	Metadata metadata.MD
	// Timeout bounds the call (default script.DefaultCallTimeout); a
	// negative Timeout leaves the call bounded by ctx alone.
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
func (h *Hub) CallPeer(ctx context.Context, pc PeerCall) (*Event, error) {
	conn, err := h.peerConn(pc.Peer)
	if err != nil {
		return nil, fmt.Errorf("serve: call peer: %s: %w", h.notConnected(pc.Peer), ErrUnknownPeer)
	}
	info, _ := h.reg.Peer(pc.Peer)
	md, types, err := h.findPeerMethod(ctx, pc.Peer, pc.Method)
	if err != nil {
		return nil, fmt.Errorf("serve: call peer %d: %w", pc.Peer, err)
	}
	sent := &sentRequests{}
	supply, err := pc.supplier(md, types, sent)
	if err != nil {
		return nil, fmt.Errorf("serve: call peer %d: %s: %w", pc.Peer, dynamic.MethodName(md), err)
	}
	timeout := pc.Timeout
	if timeout == 0 {
		timeout = script.DefaultCallTimeout
	}
	by := pc.By
	if by == "" {
		by = ByAdmin
	}
	var cctx context.Context
	var cancel context.CancelFunc
	if timeout > 0 {
		cctx, cancel = context.WithTimeout(ctx, timeout)
	} else {
		cctx, cancel = context.WithCancel(ctx)
	}
	defer cancel()
	capture := &captureHandler{next: pc.Events}
	mdOut := pc.Metadata
	if mdOut == nil {
		mdOut = metadata.MD{}
	}
	start := time.Now()
	err = dynamic.Invoke(cctx, conn, md, mdOut, capture, supply)
	if err != nil {
		return nil, fmt.Errorf("serve: call peer %d: %w", pc.Peer, err)
	}
	requests := sent.list()
	if len(requests) == 0 && !md.IsStreamingClient() {
		requests = append(requests, newMessage(md.Input())) // Invoke sent an empty one
	}
	st := capture.status
	if st == nil {
		st = status.New(0, "")
	}
	ev := &calls.Event{
		Dir: calls.Reverse, Origin: calls.Made,
		Peer:   calls.Peer{Addr: addrString(info.RemoteAddr), BackchannelID: uint64(pc.Peer)},
		Method: dynamic.MethodName(md), Metadata: mdOut, Header: capture.header, Trailer: capture.trailer,
		Requests: requests, Responses: capture.responses, Status: st, Start: start, Duration: time.Since(start),
	}
	if h.cfg.Count != nil {
		h.cfg.Count(ev.Record())
	}
	return h.record(ev, 0, 0, by, types), nil
}

// sentRequests are the requests a call has sent. A bidi call's sender
// may still be supplying when the call has ended, so they are locked.
type sentRequests struct {
	mu   sync.Mutex
	msgs []proto.Message
}

func (s *sentRequests) add(msg proto.Message) {
	s.mu.Lock()
	s.msgs = append(s.msgs, msg)
	s.mu.Unlock()
}

func (s *sentRequests) list() []proto.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]proto.Message(nil), s.msgs...)
}

// supplier returns what supplies the call's requests, recording each one
// sent: pc.Requests, or the requests of pc.Request, every one parsed
// before anything is sent so that a bad one is an error first.
func (pc PeerCall) supplier(md protoreflect.MethodDescriptor, types dynamic.TypeResolver, sent *sentRequests) (dynamic.RequestSupplier, error) {
	if pc.Requests != nil {
		return func(msg proto.Message) error {
			err := pc.Requests(msg)
			if err == nil {
				sent.add(proto.Clone(msg))
			}
			return err
		}, nil
	}
	parser := dynamic.NewJSONRequestParser(bytes.NewReader(pc.Request), types)
	var requests []proto.Message
	for {
		msg := newMessage(md.Input())
		if err := parser.Next(msg); err == io.EOF {
			break
		} else if err != nil {
			return nil, err
		}
		requests = append(requests, msg)
	}
	if !md.IsStreamingClient() && len(requests) > 1 {
		return nil, fmt.Errorf("%d requests: %w", len(requests), dynamic.ErrTooManyRequests)
	}
	next := 0
	return func(msg proto.Message) error {
		if next >= len(requests) {
			return io.EOF
		}
		proto.Merge(msg, requests[next])
		sent.add(requests[next])
		next++
		return nil
	}, nil
}

// findPeerMethod resolves a method of a peer's backchannel: in the peer
// schema, else by the peer's reflection. types resolves the method's
// messages (and Any inside them) without further I/O.
func (h *Hub) findPeerMethod(ctx context.Context, id backchannel.ID, name string) (protoreflect.MethodDescriptor, dynamic.TypeResolver, error) {
	md, err := dynamic.FindMethod(ctx, h.cfg.PeerSchema, name)
	if err == nil {
		return md, h.cfg.PeerSchema.Types(), nil
	}
	if !errors.Is(err, dynamic.ErrNotFound) {
		return nil, nil, err
	}
	if v, ok := h.peers.get(id); ok && v.Discovery == DiscoveryNotServed {
		return nil, nil, err
	}
	src, serr := h.PeerSource(ctx, id)
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
	return rmd, dynamic.ChainTypes(files.Types(), h.cfg.PeerSchema.Types()), nil
}

// PeerSource returns a schema of peer id's backchannel: the peer's own
// reflection first, then the peer schema. Close it when done; it must not
// outlive the peer's connection.
func (h *Hub) PeerSource(ctx context.Context, id backchannel.ID) (dynamic.Source, error) {
	conn, err := h.reg.Backchannel(id)
	if err != nil {
		return nil, fmt.Errorf("serve: %s: %w", h.notConnected(id), ErrUnknownPeer)
	}
	if v, ok := h.peers.get(id); ok && v.Discovery == DiscoveryNotServed {
		return dynamic.NewCompositeSource(h.cfg.PeerSchema), nil
	}
	return dynamic.NewCompositeSource(dynamic.NewSourceFromReflection(ctx, conn, nil), h.cfg.PeerSchema), nil
}

func newMessage(md protoreflect.MessageDescriptor) proto.Message {
	return dynamicpb.NewMessage(md)
}

// captureHandler keeps what an invocation reports, and passes it on to
// next when there is one.
type captureHandler struct {
	next            dynamic.InvocationEventHandler
	header, trailer metadata.MD
	responses       []proto.Message
	status          *status.Status
}

func (h *captureHandler) OnResolveMethod(md protoreflect.MethodDescriptor) {
	if h.next != nil {
		h.next.OnResolveMethod(md)
	}
}

func (h *captureHandler) OnSendHeaders(md metadata.MD) {
	if h.next != nil {
		h.next.OnSendHeaders(md)
	}
}

func (h *captureHandler) OnReceiveHeaders(md metadata.MD) {
	h.header = md
	if h.next != nil {
		h.next.OnReceiveHeaders(md)
	}
}

func (h *captureHandler) OnReceiveResponse(msg proto.Message) {
	h.responses = append(h.responses, msg)
	if h.next != nil {
		h.next.OnReceiveResponse(msg)
	}
}

func (h *captureHandler) OnReceiveTrailers(st *status.Status, md metadata.MD) {
	h.status, h.trailer = st, md
	if h.next != nil {
		h.next.OnReceiveTrailers(st, md)
	}
}
