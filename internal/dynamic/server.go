package dynamic

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/bcctl/bcctl/internal/calls"
)

// ServerOption configures RegisterServices and RegisterSource.
type ServerOption func(*serverConfig)

type serverConfig struct {
	logger *slog.Logger
}

// WithLogger sets the logger that records responders that panic or
// misbehave (default: slog.Default()).
func WithLogger(l *slog.Logger) ServerOption {
	return func(c *serverConfig) {
		if l != nil {
			c.logger = l
		}
	}
}

func newServerConfig(opts []ServerOption) *serverConfig {
	c := &serverConfig{logger: slog.Default()}
	for _, o := range opts {
		o(c)
	}
	return c
}

// RegisterServices registers services on reg (a *grpc.Server, or any
// grpc.ServiceRegistrar such as a backchannel server) without generated
// code, every method answered by r. Streaming methods are stream handlers;
// unary methods are unary handlers (grpc-go runs a non-streaming stream
// handler without any interceptor, so registering them as streams would
// silently skip the server's unary interceptors). Either way r sees the same
// Call.
//
// For each call, r.Respond sees a Call; its returned error becomes the
// status. A Responder that panics, sends a message of the wrong type, sends
// a second response on a method that returns one, or returns without
// responding on such a method fails that one call with INTERNAL; the server
// and its other calls are not affected.
//
// A *grpc.Server stops the process when a service is registered twice, so
// when reg can list its services (grpc.ServiceInfoProvider), a service it
// already has is reported as an error instead.
func RegisterServices(reg grpc.ServiceRegistrar, services []protoreflect.ServiceDescriptor, r Responder, opts ...ServerOption) error {
	if r == nil {
		return fmt.Errorf("dynamic: register services: nil Responder")
	}
	cfg := newServerConfig(opts)
	existing := map[string]bool{}
	if p, ok := reg.(interface {
		GetServiceInfo() map[string]grpc.ServiceInfo
	}); ok {
		for name := range p.GetServiceInfo() {
			existing[name] = true
		}
	}
	for _, sd := range services {
		name := string(sd.FullName())
		if existing[name] {
			return fmt.Errorf("dynamic: register services: %s is already registered", name)
		}
		existing[name] = true
	}
	for _, sd := range services {
		reg.RegisterService(serviceDesc(sd, r, cfg), nil)
	}
	return nil
}

func serviceDesc(sd protoreflect.ServiceDescriptor, r Responder, cfg *serverConfig) *grpc.ServiceDesc {
	desc := &grpc.ServiceDesc{
		ServiceName: string(sd.FullName()),
		HandlerType: (*any)(nil),
		Metadata:    sd.ParentFile().Path(),
	}
	methods := sd.Methods()
	for i := range methods.Len() {
		md := methods.Get(i)
		h := &methodHandler{
			method:     md,
			name:       MethodName(md),
			fullMethod: FullMethod(md),
			responder:  r,
			cfg:        cfg,
			input:      dynamicpb.NewMessageType(md.Input()),
			output:     md.Output().FullName(),
		}
		if !md.IsStreamingClient() && !md.IsStreamingServer() {
			desc.Methods = append(desc.Methods, grpc.MethodDesc{
				MethodName: string(md.Name()),
				Handler:    h.handleUnary,
			})
			continue
		}
		desc.Streams = append(desc.Streams, grpc.StreamDesc{
			StreamName:    string(md.Name()),
			Handler:       h.handleStream,
			ServerStreams: md.IsStreamingServer(),
			ClientStreams: md.IsStreamingClient(),
		})
	}
	return desc
}

// methodHandler answers one method.
type methodHandler struct {
	method     protoreflect.MethodDescriptor
	name       string // "pkg.Svc/Method"
	fullMethod string // "/pkg.Svc/Method"
	responder  Responder
	cfg        *serverConfig
	input      protoreflect.MessageType
	output     protoreflect.FullName
}

// handleUnary is the grpc.MethodDesc handler of a unary method: it decodes
// the request, runs the server's unary interceptors, and returns the one
// response the Responder sent.
func (h *methodHandler) handleUnary(_ any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	req := h.input.New().Interface()
	if err := dec(req); err != nil {
		return nil, err
	}
	if interceptor == nil {
		return h.respondUnary(ctx, req)
	}
	info := &grpc.UnaryServerInfo{FullMethod: h.fullMethod}
	return interceptor(ctx, req, info, func(ctx context.Context, req any) (any, error) {
		msg, ok := req.(proto.Message)
		if !ok {
			return nil, status.Errorf(codes.Internal, "an interceptor replaced the request of %s with a %T", h.name, req)
		}
		return h.respondUnary(ctx, msg)
	})
}

func (h *methodHandler) respondUnary(ctx context.Context, req proto.Message) (any, error) {
	call := &serverCall{ctx: ctx, h: h, unaryRequest: req}
	if err := h.respond(call); err != nil {
		return nil, err
	}
	return call.unaryResponse, nil
}

// handleStream is the grpc.StreamDesc handler of a streaming method.
func (h *methodHandler) handleStream(_ any, stream grpc.ServerStream) error {
	return h.respond(&serverCall{ctx: stream.Context(), h: h, stream: stream})
}

// respond runs the Responder and turns what it did into the call's status.
func (h *methodHandler) respond(call *serverCall) (err error) {
	MarkReached(call.ctx)
	defer func() {
		if p := recover(); p != nil {
			h.cfg.logger.Error("dynamic: responder panicked",
				"method", h.name, "panic", p, "stack", string(debug.Stack()))
			err = status.Errorf(codes.Internal, "responder panicked answering %s: %v", h.name, p)
		}
		call.mu.Lock()
		call.done = true
		call.mu.Unlock()
	}()
	err = h.responder.Respond(call)
	call.mu.Lock()
	defer call.mu.Unlock()
	if call.failure != nil {
		h.cfg.logger.Warn("dynamic: responder misbehaved", "method", h.name, "error", call.failure)
		return call.failure
	}
	if err == nil && !h.method.IsStreamingServer() && call.sent == 0 {
		return status.Errorf(codes.Internal, "responder sent no response for %s, which returns one", h.name)
	}
	if ctxErr := call.ctx.Err(); err != nil && ctxErr != nil && errors.Is(err, ctxErr) {
		// The caller went away: report it as CANCELLED or DEADLINE_EXCEEDED
		// rather than UNKNOWN.
		return status.FromContextError(err).Err()
	}
	return err
}

// serverCall is the Call the dynamic server hands to a Responder. A unary
// call has no stream: its request was decoded before the interceptors ran,
// and its response is returned to grpc-go once the Responder is done.
type serverCall struct {
	ctx    context.Context
	h      *methodHandler
	stream grpc.ServerStream // nil for a unary call

	recvMu       sync.Mutex
	received     int
	unaryRequest proto.Message

	mu            sync.Mutex // serialises Send and guards the fields below
	sent          int
	done          bool
	failure       error
	unaryResponse proto.Message
}

var _ Call = (*serverCall)(nil)

func (c *serverCall) Context() context.Context { return c.ctx }

func (c *serverCall) Method() protoreflect.MethodDescriptor { return c.h.method }

func (c *serverCall) Metadata() metadata.MD {
	md, ok := metadata.FromIncomingContext(c.ctx)
	if !ok || md == nil {
		return metadata.MD{}
	}
	return md
}

func (c *serverCall) Peer() calls.Peer {
	var p calls.Peer
	if pr, ok := peer.FromContext(c.ctx); ok && pr.Addr != nil {
		p.Addr = pr.Addr.String()
	}
	p.BackchannelID = backchannelPeerID(c.ctx)
	return p
}

func (c *serverCall) Recv() (proto.Message, error) {
	c.recvMu.Lock()
	defer c.recvMu.Unlock()
	if !c.h.method.IsStreamingClient() && c.received > 0 {
		// A unary or server-streaming call has exactly one request.
		return nil, io.EOF
	}
	c.received++
	if c.stream == nil {
		return c.unaryRequest, nil
	}
	msg := c.h.input.New().Interface()
	if err := c.stream.RecvMsg(msg); err != nil {
		return nil, err
	}
	return msg, nil
}

func (c *serverCall) SetHeader(md metadata.MD) error {
	if c.stream == nil {
		return grpc.SetHeader(c.ctx, md)
	}
	return c.stream.SetHeader(md)
}

func (c *serverCall) SendHeader(md metadata.MD) error {
	if c.stream == nil {
		return grpc.SendHeader(c.ctx, md)
	}
	return c.stream.SendHeader(md)
}

func (c *serverCall) SetTrailer(md metadata.MD) {
	if c.stream == nil {
		_ = grpc.SetTrailer(c.ctx, md) // fails only after the call ended
		return
	}
	c.stream.SetTrailer(md)
}

func (c *serverCall) Send(msg proto.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done {
		return status.Errorf(codes.Internal, "send on %s after the responder returned", c.h.name)
	}
	if c.failure != nil {
		return c.failure
	}
	if msg == nil {
		c.failure = status.Errorf(codes.Internal, "responder sent a nil message for %s", c.h.name)
		return c.failure
	}
	if got := msg.ProtoReflect().Descriptor().FullName(); got != c.h.output {
		c.failure = status.Errorf(codes.Internal, "responder sent a %s for %s, which returns %s", got, c.h.name, c.h.output)
		return c.failure
	}
	if !c.h.method.IsStreamingServer() && c.sent > 0 {
		c.failure = status.Errorf(codes.Internal, "responder sent a second response for %s, which returns one", c.h.name)
		return c.failure
	}
	if c.stream == nil {
		c.unaryResponse = msg
		c.sent++
		return nil
	}
	if err := c.stream.SendMsg(msg); err != nil {
		return err
	}
	c.sent++
	return nil
}
