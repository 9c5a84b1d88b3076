package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/journal"
	"github.com/bcctl/bcctl/internal/script"
	"github.com/bcctl/bcctl/internal/serve"
)

// Options configure NewServer.
type Options struct {
	// Listen are serve's listen addresses, as GetServer reports them.
	Listen []string
	// Logger receives what the admin server's responders report; nil
	// discards.
	Logger *slog.Logger
	// ServerOptions are added to the admin gRPC server's options.
	ServerOptions []grpc.ServerOption
}

// NewServer returns a gRPC server that answers the admin API for srv, with
// reflection and health for it. Serve it on a listener that CheckAddress
// accepted, and stop it after srv's Shutdown (journal streams end then).
func NewServer(srv *serve.Server, opts Options) (*grpc.Server, error) {
	sd, err := Service()
	if err != nil {
		return nil, err
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	g := grpc.NewServer(opts.ServerOptions...)
	h := &handler{srv: srv, listen: opts.Listen}
	if err := dynamic.RegisterServices(g, []protoreflect.ServiceDescriptor{sd}, dynamic.ResponderFunc(h.respond), dynamic.WithLogger(logger)); err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	dynamic.RegisterReflection(g, []protoreflect.ServiceDescriptor{sd})
	dynamic.RegisterHealth(g, []protoreflect.ServiceDescriptor{sd})
	return g, nil
}

// handler answers the admin methods.
type handler struct {
	srv    *serve.Server
	listen []string
}

func (h *handler) respond(call dynamic.Call) error {
	switch call.Method().Name() {
	case "GetServer":
		return h.getServer(call)
	case "ListPeers":
		return h.listPeers(call)
	case "WatchPeers":
		return h.watchPeers(call)
	case "CallPeer":
		return h.callPeer(call)
	case "StreamJournal":
		return h.streamJournal(call)
	case "CheckExpectations":
		return h.checkExpectations(call)
	}
	return status.Errorf(codes.Unimplemented, "admin: %s is not implemented by this bcctl", dynamic.MethodName(call.Method()))
}

// recv reads the call's request into v.
func recv(call dynamic.Call, v any) error {
	msg, err := call.Recv()
	if err != nil {
		return err
	}
	if err := fromMessage(msg, v); err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	return nil
}

// send sends v as the call's (next) response.
func send(call dynamic.Call, v any) error {
	msg, err := toMessage(call.Method().Output(), v)
	if err != nil {
		return status.Error(codes.Internal, err.Error())
	}
	return call.Send(msg)
}

func (h *handler) getServer(call dynamic.Call) error {
	if err := recv(call, &empty{}); err != nil {
		return err
	}
	st := h.srv.Stats()
	names, err := h.srv.Schema().ListServices(call.Context())
	if err != nil {
		return status.Errorf(codes.Internal, "admin: list serve's services: %v", err)
	}
	services := make([]string, len(names))
	for i, n := range names {
		services[i] = string(n)
	}
	started := st.Started.UTC()
	sc := h.srv.ScriptState()
	return send(call, ServerInfo{
		Listen: h.listen, Script: sc.Name, Services: services, Started: &started,
		Peers: uint32(st.Peers), ForwardCalls: st.ForwardCalls, ReverseCalls: st.ReverseCalls,
		RejectedConnections: st.RejectedConnections, JournalErrors: st.JournalErrors,
		ScriptReloads: uint32(sc.Reloads), ScriptError: sc.LastError,
	})
}

func (h *handler) listPeers(call dynamic.Call) error {
	if err := recv(call, &empty{}); err != nil {
		return err
	}
	return send(call, peerList{Peers: peersOf(h.srv.Peers())})
}

func (h *handler) watchPeers(call dynamic.Call) error {
	if err := recv(call, &empty{}); err != nil {
		return err
	}
	snapshot, changes := h.srv.WatchPeers(call.Context())
	if err := send(call, watchPeersResponse{Snapshot: &peerList{Peers: peersOf(snapshot)}}); err != nil {
		return err
	}
	for c := range changes {
		p := peerOf(c.Peer)
		at := c.At.UTC()
		if err := send(call, watchPeersResponse{Change: &PeerChange{Kind: c.Kind.String(), Peer: &p, At: &at}}); err != nil {
			return err
		}
	}
	return call.Context().Err()
}

func (h *handler) callPeer(call dynamic.Call) error {
	var req CallPeerRequest
	if err := recv(call, &req); err != nil {
		return err
	}
	if req.PeerID == 0 {
		return status.Error(codes.InvalidArgument, "admin: CallPeer: peer_id is required (a peer's backchannel ID, as ListPeers shows)")
	}
	if req.Method == "" {
		return status.Error(codes.InvalidArgument, "admin: CallPeer: method is required")
	}
	md := metadata.MD{}
	for _, m := range req.Metadata {
		md.Append(strings.ToLower(m.Key), m.Value)
	}
	ev, err := h.srv.CallPeer(call.Context(), serve.PeerCall{
		Peer: backchannel.ID(req.PeerID), Method: req.Method, Request: []byte(req.RequestJSON),
		Metadata: md, Timeout: time.Duration(req.TimeoutMS) * time.Millisecond, By: serve.ByAdmin,
	})
	if err != nil {
		return callPeerStatus(err)
	}
	c := ev.Call
	resp := CallPeerResponse{
		Code: calls.CodeName(c.Status.Code()), Message: c.Status.Message(),
		DetailsJSON: dynamic.StatusDetailsJSON(c.Status, ev.Types, dynamic.FormatOptions{ProtoNames: true, Compact: true}),
		Header:      metadataOf(c.Header), Trailer: metadataOf(c.Trailer),
		DurationMS: float64(c.Duration.Microseconds()) / 1000, JournalID: ev.ID, Method: c.Method,
	}
	for _, m := range c.Responses {
		resp.ResponsesJSON = append(resp.ResponsesJSON, string(journal.MessageJSON(m, ev.Types)))
	}
	return send(call, resp)
}

// callPeerStatus maps why CallPeer could not make a call to a status.
func callPeerStatus(err error) error {
	var fe *dynamic.FieldError
	switch {
	case errors.Is(err, serve.ErrUnknownPeer), errors.Is(err, dynamic.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.As(err, &fe), errors.Is(err, dynamic.ErrTooManyRequests):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	}
	if st, ok := status.FromError(err); ok {
		return st.Err()
	}
	return status.Error(codes.InvalidArgument, err.Error())
}

func (h *handler) streamJournal(call dynamic.Call) error {
	var q JournalQuery
	if err := recv(call, &q); err != nil {
		return err
	}
	f, err := q.filter()
	if err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	sub := h.srv.Subscribe(call.Context(), serve.SubscribeOptions{Filter: f, Backlog: !q.NoBacklog, Follow: q.Follow})
	for ev := range sub.C {
		line, err := json.Marshal(ev.Entry())
		if err != nil {
			return status.Errorf(codes.Internal, "admin: journal entry %d: %v", ev.ID, err)
		}
		if err := send(call, JournalLine{ID: ev.ID, Line: string(line)}); err != nil {
			return err
		}
	}
	if err := sub.Err(); err != nil {
		return status.Error(codes.ResourceExhausted, err.Error())
	}
	return call.Context().Err()
}

// filter turns the query into a journal filter, checking each field.
func (q JournalQuery) filter() (serve.Filter, error) {
	f := serve.Filter{Method: q.Method, AfterID: q.AfterID}
	if err := f.Validate(); err != nil {
		return f, err
	}
	switch strings.ToLower(q.Dir) {
	case "":
	case journal.DirForward:
		f.Dir = calls.Forward
	case journal.DirReverse:
		f.Dir = calls.Reverse
	default:
		return f, fmt.Errorf("dir %q: want forward or reverse", q.Dir)
	}
	if q.PeerID != nil {
		f.Peer, f.HasPeer = *q.PeerID, true
	}
	if q.Code != "" {
		c, err := calls.ParseCode(q.Code)
		if err != nil {
			return f, fmt.Errorf("code: %w", err)
		}
		f.Code, f.HasCode = c, true
	}
	return f, nil
}

func (h *handler) checkExpectations(call dynamic.Call) error {
	if err := recv(call, &empty{}); err != nil {
		return err
	}
	return send(call, expectationsOf(h.srv.Check()))
}

func expectationsOf(r *script.Report) Expectations {
	out := Expectations{OK: r.OK(), Report: r.String()}
	for _, res := range r.Results {
		out.Results = append(out.Results, ExpectationResult{
			Name: res.Expectation.Name, Pos: res.Expectation.Pos.String(),
			Count: uint64(res.Count), OK: res.OK, Line: res.String(),
		})
	}
	return out
}

func peersOf(views []serve.PeerView) []Peer {
	out := make([]Peer, len(views))
	for i, v := range views {
		out[i] = peerOf(v)
	}
	return out
}

func peerOf(v serve.PeerView) Peer {
	connected := v.ConnectedAt.UTC()
	p := Peer{
		ID: uint64(v.ID), RemoteAddr: v.RemoteAddr, ConnectedAt: &connected,
		ForwardCalls: v.ForwardCalls, ReverseCalls: v.ReverseCalls,
		Services: v.Services, Discovery: v.Discovery.String(), DiscoveryError: v.DiscoveryError,
		OnConnectError: v.OnConnectError,
	}
	if l := v.LastCall; l != nil {
		at := l.At.UTC()
		p.LastCall = &LastCall{At: &at, Dir: l.Dir.String(), Method: l.Method, Code: calls.CodeName(l.Code)}
	}
	return p
}

// metadataOf lists md sorted by key; values of -bin keys are base64, as in
// the journal.
func metadataOf(md metadata.MD) []Metadata {
	m := journal.MetadataJSON(md)
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var out []Metadata
	for _, k := range keys {
		for _, v := range m[k] {
			out = append(out, Metadata{Key: k, Value: v})
		}
	}
	return out
}
