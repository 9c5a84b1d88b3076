package dynamic

import (
	"context"
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
// code: every method, whatever its call kind, is a stream handler that hands
// the call to r.
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
			method:    md,
			responder: r,
			cfg:       cfg,
			input:     dynamicpb.NewMessageType(md.Input()),
			output:    md.Output().FullName(),
		}
		desc.Streams = append(desc.Streams, grpc.StreamDesc{
			StreamName:    string(md.Name()),
			Handler:       h.handle,
			ServerStreams: md.IsStreamingServer(),
			ClientStreams: md.IsStreamingClient(),
		})
	}
	return desc
}

// methodHandler answers one method.
type methodHandler struct {
	method    protoreflect.MethodDescriptor
	responder Responder
	cfg       *serverConfig
	input     protoreflect.MessageType
	output    protoreflect.FullName
}

func (h *methodHandler) handle(_ any, stream grpc.ServerStream) (err error) {
	call := &serverCall{stream: stream, h: h}
	defer func() {
		if p := recover(); p != nil {
			h.cfg.logger.Error("dynamic: responder panicked",
				"method", MethodName(h.method), "panic", p, "stack", string(debug.Stack()))
			err = status.Errorf(codes.Internal, "responder panicked answering %s: %v", MethodName(h.method), p)
		}
	}()
	err = h.responder.Respond(call)
	call.mu.Lock()
	defer call.mu.Unlock()
	call.done = true
	if call.failure != nil {
		h.cfg.logger.Warn("dynamic: responder misbehaved", "method", MethodName(h.method), "error", call.failure)
		return call.failure
	}
	if err == nil && !h.method.IsStreamingServer() && call.sent == 0 {
		return status.Errorf(codes.Internal, "responder sent no response for %s, which returns one", MethodName(h.method))
	}
	return err
}

// serverCall is the Call the dynamic server hands to a Responder.
type serverCall struct {
	stream grpc.ServerStream
	h      *methodHandler

	recvMu   sync.Mutex
	received int

	mu      sync.Mutex // serialises Send and guards the fields below
	sent    int
	done    bool
	failure error
}

var _ Call = (*serverCall)(nil)

func (c *serverCall) Context() context.Context { return c.stream.Context() }

func (c *serverCall) Method() protoreflect.MethodDescriptor { return c.h.method }

func (c *serverCall) Metadata() metadata.MD {
	md, ok := metadata.FromIncomingContext(c.stream.Context())
	if !ok || md == nil {
		return metadata.MD{}
	}
	return md
}

func (c *serverCall) Peer() Peer {
	var p Peer
	ctx := c.stream.Context()
	if pr, ok := peer.FromContext(ctx); ok && pr.Addr != nil {
		p.Addr = pr.Addr.String()
	}
	p.BackchannelID = backchannelPeerID(ctx)
	return p
}

func (c *serverCall) Recv() (proto.Message, error) {
	c.recvMu.Lock()
	defer c.recvMu.Unlock()
	if !c.h.method.IsStreamingClient() && c.received > 0 {
		// A unary or server-streaming call has exactly one request.
		return nil, io.EOF
	}
	msg := c.h.input.New().Interface()
	if err := c.stream.RecvMsg(msg); err != nil {
		return nil, err
	}
	c.received++
	return msg, nil
}

func (c *serverCall) SetHeader(md metadata.MD) error { return c.stream.SetHeader(md) }

func (c *serverCall) SendHeader(md metadata.MD) error { return c.stream.SendHeader(md) }

func (c *serverCall) SetTrailer(md metadata.MD) { c.stream.SetTrailer(md) }

func (c *serverCall) Send(msg proto.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done {
		return status.Errorf(codes.Internal, "send on %s after the responder returned", MethodName(c.h.method))
	}
	if c.failure != nil {
		return c.failure
	}
	if msg == nil {
		c.failure = status.Errorf(codes.Internal, "responder sent a nil message for %s", MethodName(c.h.method))
		return c.failure
	}
	if got := msg.ProtoReflect().Descriptor().FullName(); got != c.h.output {
		c.failure = status.Errorf(codes.Internal, "responder sent a %s for %s, which returns %s", got, MethodName(c.h.method), c.h.output)
		return c.failure
	}
	if !c.h.method.IsStreamingServer() && c.sent > 0 {
		c.failure = status.Errorf(codes.Internal, "responder sent a second response for %s, which returns one", MethodName(c.h.method))
		return c.failure
	}
	if err := c.stream.SendMsg(msg); err != nil {
		return err
	}
	c.sent++
	return nil
}
