package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/internal/admin/adminpb"
	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/journal"
	"github.com/bcctl/bcctl/internal/script"
	"github.com/bcctl/bcctl/internal/serve"
)

// ServiceName is the full name of the admin service.
const ServiceName = "bcctl.admin.v1.Admin"

// Backend is what the admin API serves: a *serve.Server, or bcctl
// proxy's (its serve.Hub, with the proxy's schema and script).
type Backend interface {
	// Stats, Schema and ScriptState say what GetServer reports.
	Stats() serve.Stats
	Schema() dynamic.Source
	ScriptState() serve.ScriptState
	// Peers, WatchPeers, CallPeer and Subscribe are a serve.Hub's.
	Peers() []serve.PeerView
	WatchPeers(ctx context.Context) ([]serve.PeerView, <-chan serve.PeerChange)
	CallPeer(ctx context.Context, pc serve.PeerCall) (*serve.Event, error)
	Subscribe(ctx context.Context, opts serve.SubscribeOptions) *serve.Subscription
	// Check evaluates the script's expectations.
	Check() *script.Report
}

var _ Backend = (*serve.Server)(nil)

// Options configure NewServer.
type Options struct {
	// Kind is "serve" (the default) or "proxy", as GetServer reports it;
	// Upstream is a proxy's upstream.
	Kind, Upstream string
	// Listen are serve's listen addresses, as GetServer reports them.
	Listen []string
	// Logger receives what the admin server reports (a handler that
	// panicked); nil discards.
	Logger *slog.Logger
	// ServerOptions are added to the admin gRPC server's options.
	ServerOptions []grpc.ServerOption
}

// NewServer returns a gRPC server that answers the admin API for srv, with
// reflection and health for it. Serve it on a listener that CheckAddress
// accepted, and stop it after srv's Shutdown (journal streams end then).
func NewServer(srv Backend, opts Options) (*grpc.Server, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	sd := adminpb.File_bcctl_admin_v1_admin_proto.Services().ByName("Admin")
	if sd == nil || sd.FullName() != ServiceName {
		return nil, fmt.Errorf("admin: the generated code has no service %s", ServiceName)
	}
	g := grpc.NewServer(append([]grpc.ServerOption{
		grpc.ChainUnaryInterceptor(recoverUnary(logger)),
		grpc.ChainStreamInterceptor(recoverStream(logger)),
	}, opts.ServerOptions...)...)
	kind := opts.Kind
	if kind == "" {
		kind = "serve"
	}
	adminpb.RegisterAdminServer(g, &handler{srv: srv, listen: opts.Listen, kind: kind, upstream: opts.Upstream})
	dynamic.RegisterReflection(g, []protoreflect.ServiceDescriptor{sd})
	dynamic.RegisterHealth(g, []protoreflect.ServiceDescriptor{sd})
	return g, nil
}

// handler answers the admin methods.
type handler struct {
	adminpb.UnimplementedAdminServer

	srv            Backend
	listen         []string
	kind, upstream string
}

var _ adminpb.AdminServer = (*handler)(nil)

func (h *handler) GetServer(ctx context.Context, _ *adminpb.GetServerRequest) (*adminpb.GetServerResponse, error) {
	st := h.srv.Stats()
	names, err := h.srv.Schema().ListServices(ctx)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "admin: list serve's services: %v", err)
	}
	services := make([]string, len(names))
	for i, n := range names {
		services[i] = string(n)
	}
	sc := h.srv.ScriptState()
	return &adminpb.GetServerResponse{
		Listen: h.listen, Script: sc.Name, Services: services, Started: timestamppb.New(st.Started),
		Peers: uint32(st.Peers), PlainClients: uint32(max(st.PlainClients, 0)), ForwardCalls: st.ForwardCalls, ReverseCalls: st.ReverseCalls,
		RejectedConnections: st.RejectedConnections, JournalErrors: st.JournalErrors,
		ScriptReloads: uint32(sc.Reloads), ScriptError: sc.LastError, Kind: h.kind, Upstream: h.upstream,
	}, nil
}

func (h *handler) ListPeers(context.Context, *adminpb.ListPeersRequest) (*adminpb.ListPeersResponse, error) {
	return &adminpb.ListPeersResponse{Peers: peersOf(h.srv.Peers())}, nil
}

func (h *handler) WatchPeers(_ *adminpb.WatchPeersRequest, stream adminpb.Admin_WatchPeersServer) error {
	ctx := stream.Context()
	snapshot, changes := h.srv.WatchPeers(ctx)
	first := &adminpb.WatchPeersResponse{Event: &adminpb.WatchPeersResponse_Snapshot{Snapshot: &adminpb.ListPeersResponse{Peers: peersOf(snapshot)}}}
	if err := stream.Send(first); err != nil {
		return err
	}
	for c := range changes {
		change := &adminpb.PeerChange{Kind: c.Kind.String(), Peer: peerOf(c.Peer), At: timestamppb.New(c.At)}
		if err := stream.Send(&adminpb.WatchPeersResponse{Event: &adminpb.WatchPeersResponse_Change{Change: change}}); err != nil {
			return err
		}
	}
	return ctx.Err()
}

func (h *handler) CallPeer(ctx context.Context, req *adminpb.CallPeerRequest) (*adminpb.CallPeerResponse, error) {
	if req.GetPeerId() == 0 {
		return nil, status.Error(codes.InvalidArgument, "admin: CallPeer: peer_id is required (a peer's backchannel ID, as ListPeers shows)")
	}
	if req.GetMethod() == "" {
		return nil, status.Error(codes.InvalidArgument, "admin: CallPeer: method is required")
	}
	md := metadata.MD{}
	for _, m := range req.GetMetadata() {
		md.Append(strings.ToLower(m.GetKey()), m.GetValue())
	}
	ev, err := h.srv.CallPeer(ctx, serve.PeerCall{
		Peer: backchannel.ID(req.GetPeerId()), Method: req.GetMethod(), Request: []byte(req.GetRequestJson()),
		Metadata: md, Timeout: time.Duration(req.GetTimeoutMs()) * time.Millisecond, By: serve.ByAdmin,
	})
	if err != nil {
		return nil, callPeerStatus(err)
	}
	c := ev.Call
	resp := &adminpb.CallPeerResponse{
		Code: calls.CodeName(c.Status.Code()), Message: c.Status.Message(),
		DetailsJson: dynamic.StatusDetailsJSON(c.Status, ev.Types, dynamic.FormatOptions{ProtoNames: true, Compact: true}),
		Header:      metadataOf(c.Header), Trailer: metadataOf(c.Trailer),
		DurationMs: float64(c.Duration.Microseconds()) / 1000, JournalId: ev.ID, Method: c.Method,
	}
	for _, m := range c.Responses {
		resp.ResponsesJson = append(resp.ResponsesJson, string(journal.MessageJSON(m, journal.Rendering{Resolver: ev.Types, Bytes: ev.Bytes})))
	}
	return resp, nil
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

func (h *handler) StreamJournal(req *adminpb.StreamJournalRequest, stream adminpb.Admin_StreamJournalServer) error {
	ctx := stream.Context()
	f, err := journalFilter(req)
	if err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	sub := h.srv.Subscribe(ctx, serve.SubscribeOptions{Filter: f, Backlog: !req.GetNoBacklog(), Follow: req.GetFollow()})
	for ev := range sub.C {
		line, err := json.Marshal(ev.Entry())
		if err != nil {
			return status.Errorf(codes.Internal, "admin: journal entry %d: %v", ev.ID, err)
		}
		if err := stream.Send(&adminpb.StreamJournalResponse{Id: ev.ID, Line: string(line)}); err != nil {
			return err
		}
	}
	if err := sub.Err(); err != nil {
		return status.Error(codes.ResourceExhausted, err.Error())
	}
	return ctx.Err()
}

// journalFilter turns a journal request into a filter, checking each field.
func journalFilter(req *adminpb.StreamJournalRequest) (serve.Filter, error) {
	f := serve.Filter{Method: req.GetMethod(), AfterID: req.GetAfterId()}
	if err := f.Validate(); err != nil {
		return f, err
	}
	switch strings.ToLower(req.GetDir()) {
	case "":
	case journal.DirForward:
		f.Dir = calls.Forward
	case journal.DirReverse:
		f.Dir = calls.Reverse
	default:
		return f, fmt.Errorf("dir %q: want forward or reverse", req.GetDir())
	}
	if req.PeerId != nil {
		f.Peer, f.HasPeer = req.GetPeerId(), true
	}
	if req.GetCode() != "" {
		c, err := calls.ParseCode(req.GetCode())
		if err != nil {
			return f, fmt.Errorf("code: %w", err)
		}
		f.Code, f.HasCode = c, true
	}
	return f, nil
}

func (h *handler) CheckExpectations(context.Context, *adminpb.CheckExpectationsRequest) (*adminpb.CheckExpectationsResponse, error) {
	return expectationsOf(h.srv.Check()), nil
}

func expectationsOf(r *script.Report) *adminpb.CheckExpectationsResponse {
	out := &adminpb.CheckExpectationsResponse{Ok: r.OK(), Report: r.String()}
	for _, res := range r.Results {
		out.Results = append(out.Results, &adminpb.ExpectationResult{
			Name: res.Expectation.Name, Pos: res.Expectation.Pos.String(),
			Count: uint64(res.Count), Ok: res.OK, Line: res.String(),
		})
	}
	return out
}

func peersOf(views []serve.PeerView) []*adminpb.Peer {
	out := make([]*adminpb.Peer, len(views))
	for i, v := range views {
		out[i] = peerOf(v)
	}
	return out
}

func peerOf(v serve.PeerView) *adminpb.Peer {
	p := &adminpb.Peer{
		Id: uint64(v.ID), RemoteAddr: v.RemoteAddr, ConnectedAt: timestamppb.New(v.ConnectedAt),
		ForwardCalls: v.ForwardCalls, ReverseCalls: v.ReverseCalls,
		Services: v.Services, Discovery: v.Discovery.String(), DiscoveryError: v.DiscoveryError,
		OnConnectError: v.OnConnectError,
	}
	if l := v.LastCall; l != nil {
		p.LastCall = &adminpb.LastCall{At: timestamppb.New(l.At), Dir: l.Dir.String(), Method: l.Method, Code: calls.CodeName(l.Code)}
	}
	return p
}

// metadataOf lists md sorted by key; values of -bin keys are base64, as in
// the journal.
func metadataOf(md metadata.MD) []*adminpb.Metadata {
	m := journal.MetadataJSON(md)
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var out []*adminpb.Metadata
	for _, k := range keys {
		for _, v := range m[k] {
			out = append(out, &adminpb.Metadata{Key: k, Value: v})
		}
	}
	return out
}

// recoverUnary and recoverStream turn a handler's panic into INTERNAL for
// that call alone, and log it.
func recoverUnary(logger *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (resp any, err error) {
		defer recovered(logger, info.FullMethod, &err)
		return next(ctx, req)
	}
}

func recoverStream(logger *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, next grpc.StreamHandler) (err error) {
		defer recovered(logger, info.FullMethod, &err)
		return next(srv, ss)
	}
}

func recovered(logger *slog.Logger, method string, err *error) {
	if p := recover(); p != nil {
		logger.Error("admin: handler panicked", "method", method, "panic", p, "stack", string(debug.Stack()))
		*err = status.Errorf(codes.Internal, "admin: %s panicked: %v", method, p)
	}
}
