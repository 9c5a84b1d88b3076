package dynamic

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

// InvocationEventHandler is told what happens during an invocation, in
// order: the method is resolved, headers are sent, response headers
// arrive, each response arrives, and the call ends with a status and
// trailers. Calls are never concurrent.
type InvocationEventHandler interface {
	// OnResolveMethod is called with the method about to be invoked.
	OnResolveMethod(md protoreflect.MethodDescriptor)
	// OnSendHeaders is called with the request metadata about to be sent.
	OnSendHeaders(md metadata.MD)
	// OnReceiveHeaders is called with the response headers.
	OnReceiveHeaders(md metadata.MD)
	// OnReceiveResponse is called with each response message (a dynamic
	// message of the method's output type).
	OnReceiveResponse(msg proto.Message)
	// OnReceiveTrailers is called once at the end with the call's status
	// (OK included) and trailers.
	OnReceiveTrailers(st *status.Status, md metadata.MD)
}

// RequestSupplier fills msg with the next request and returns io.EOF when
// there are none left. A RequestParser's Next is one.
type RequestSupplier func(msg proto.Message) error

// ErrTooManyRequests is wrapped when a method that takes one request (unary
// or server streaming) is given more.
var ErrTooManyRequests = errors.New("method takes exactly one request")

// InvokeRPC resolves methodName in src ("pkg.Svc/Method" or any spelling
// FindMethod accepts) and invokes it over cc. See Invoke.
func InvokeRPC(ctx context.Context, src Source, cc grpc.ClientConnInterface, methodName string, headers metadata.MD,
	handler InvocationEventHandler, requests RequestSupplier, opts ...grpc.CallOption) error {
	md, err := FindMethod(ctx, src, methodName)
	if err != nil {
		return err
	}
	return Invoke(ctx, cc, md, headers, handler, requests, opts...)
}

// Invoke calls method md over cc (a *grpc.ClientConn, a backchannel
// connection, anything that implements grpc.ClientConnInterface) with any
// of the four call kinds, sending headers as request metadata.
//
// A unary or server-streaming method takes exactly one request; when
// requests supplies none, an empty message is sent (as grpcurl does). For
// client and bidi streaming, every request is sent; bidi streaming is full
// duplex: responses are handed to handler while requests are still being
// read.
//
// The returned error is about the invocation itself (a bad request, too
// many requests); the RPC's own outcome, OK or not, goes to
// handler.OnReceiveTrailers.
func Invoke(ctx context.Context, cc grpc.ClientConnInterface, md protoreflect.MethodDescriptor, headers metadata.MD,
	handler InvocationEventHandler, requests RequestSupplier, opts ...grpc.CallOption) error {
	if requests == nil {
		requests = func(proto.Message) error { return io.EOF }
	}
	handler.OnResolveMethod(md)
	headers = headers.Copy()
	if headers == nil {
		headers = metadata.MD{}
	}
	if existing, ok := metadata.FromOutgoingContext(ctx); ok {
		ctx = metadata.NewOutgoingContext(ctx, metadata.Join(existing, headers))
	} else {
		ctx = metadata.NewOutgoingContext(ctx, headers)
	}
	handler.OnSendHeaders(headers)
	switch {
	case md.IsStreamingClient() && md.IsStreamingServer():
		return invokeBidi(ctx, cc, md, handler, requests, opts)
	case md.IsStreamingClient():
		return invokeClientStream(ctx, cc, md, handler, requests, opts)
	case md.IsStreamingServer():
		return invokeServerStream(ctx, cc, md, handler, requests, opts)
	default:
		return invokeUnary(ctx, cc, md, handler, requests, opts)
	}
}

// singleRequest reads the one request of a unary or server-streaming call.
func singleRequest(md protoreflect.MethodDescriptor, requests RequestSupplier) (proto.Message, error) {
	req := dynamicpb.NewMessage(md.Input())
	if err := requests(req); err != nil && err != io.EOF {
		return nil, err
	}
	extra := dynamicpb.NewMessage(md.Input())
	switch err := requests(extra); {
	case err == io.EOF:
		return req, nil
	case err != nil:
		return nil, err
	default:
		return nil, fmt.Errorf("dynamic: %s is %s: %w, got more", MethodName(md), callKind(md), ErrTooManyRequests)
	}
}

func callKind(md protoreflect.MethodDescriptor) string {
	switch {
	case md.IsStreamingClient() && md.IsStreamingServer():
		return "bidi streaming"
	case md.IsStreamingClient():
		return "client streaming"
	case md.IsStreamingServer():
		return "server streaming"
	default:
		return "unary"
	}
}

func invokeUnary(ctx context.Context, cc grpc.ClientConnInterface, md protoreflect.MethodDescriptor,
	handler InvocationEventHandler, requests RequestSupplier, opts []grpc.CallOption) error {
	req, err := singleRequest(md, requests)
	if err != nil {
		return err
	}
	var header, trailer metadata.MD
	resp := dynamicpb.NewMessage(md.Output())
	err = cc.Invoke(ctx, FullMethod(md), req, resp, append(opts, grpc.Header(&header), grpc.Trailer(&trailer))...)
	handler.OnReceiveHeaders(header)
	if err == nil {
		handler.OnReceiveResponse(resp)
	}
	handler.OnReceiveTrailers(status.Convert(err), trailer)
	return nil
}

func newStream(ctx context.Context, cc grpc.ClientConnInterface, md protoreflect.MethodDescriptor, opts []grpc.CallOption) (grpc.ClientStream, error) {
	desc := &grpc.StreamDesc{
		StreamName:    string(md.Name()),
		ServerStreams: md.IsStreamingServer(),
		ClientStreams: md.IsStreamingClient(),
	}
	return cc.NewStream(ctx, desc, FullMethod(md), opts...)
}

// receiveAll hands every response of stream to handler, then its status
// and trailers.
func receiveAll(stream grpc.ClientStream, md protoreflect.MethodDescriptor, handler InvocationEventHandler) {
	header, err := stream.Header()
	if err == nil {
		handler.OnReceiveHeaders(header)
	}
	for err == nil {
		resp := dynamicpb.NewMessage(md.Output())
		if err = stream.RecvMsg(resp); err == nil {
			handler.OnReceiveResponse(resp)
		}
	}
	if err == io.EOF {
		err = nil
	}
	handler.OnReceiveTrailers(status.Convert(err), stream.Trailer())
}

func invokeServerStream(ctx context.Context, cc grpc.ClientConnInterface, md protoreflect.MethodDescriptor,
	handler InvocationEventHandler, requests RequestSupplier, opts []grpc.CallOption) error {
	req, err := singleRequest(md, requests)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := newStream(ctx, cc, md, opts)
	if err != nil {
		handler.OnReceiveTrailers(status.Convert(err), nil)
		return nil
	}
	if err := stream.SendMsg(req); err != nil && err != io.EOF {
		handler.OnReceiveTrailers(status.Convert(err), nil)
		return nil
	}
	_ = stream.CloseSend() // the outcome shows in RecvMsg
	receiveAll(stream, md, handler)
	return nil
}

func invokeClientStream(ctx context.Context, cc grpc.ClientConnInterface, md protoreflect.MethodDescriptor,
	handler InvocationEventHandler, requests RequestSupplier, opts []grpc.CallOption) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := newStream(ctx, cc, md, opts)
	if err != nil {
		handler.OnReceiveTrailers(status.Convert(err), nil)
		return nil
	}
	if err := sendAll(stream, md, requests); err != nil {
		cancel()
		return err
	}
	receiveAll(stream, md, handler)
	return nil
}

// sendAll sends every request and half-closes. It stops early, without an
// error, when the server has already ended the call (its status then shows
// in RecvMsg); a bad request is returned as the error.
func sendAll(stream grpc.ClientStream, md protoreflect.MethodDescriptor, requests RequestSupplier) error {
	for {
		req := dynamicpb.NewMessage(md.Input())
		err := requests(req)
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if err := stream.SendMsg(req); err != nil {
			// io.EOF: the server ended the call; RecvMsg returns why.
			// Anything else also ends the stream, and RecvMsg reports it.
			return nil
		}
	}
	_ = stream.CloseSend()
	return nil
}

func invokeBidi(ctx context.Context, cc grpc.ClientConnInterface, md protoreflect.MethodDescriptor,
	handler InvocationEventHandler, requests RequestSupplier, opts []grpc.CallOption) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := newStream(ctx, cc, md, opts)
	if err != nil {
		handler.OnReceiveTrailers(status.Convert(err), nil)
		return nil
	}
	sendDone := make(chan error, 1)
	go func() {
		err := sendAll(stream, md, requests)
		sendDone <- err
		if err != nil {
			cancel() // a bad request ends the call
		}
	}()
	receiveAll(stream, md, handler)
	select {
	case err := <-sendDone:
		return err
	default:
		// The call ended while requests were still being supplied (the
		// server finished early). Do not wait for a supplier that may block
		// on a terminal: the sender goroutine ends after the supplier's next
		// return, when its send fails.
		return nil
	}
}

// ParseHeaders turns "name: value" strings (grpcurl's -H) into metadata.
// Names are lower-cased; a name may repeat.
func ParseHeaders(headers []string) (metadata.MD, error) {
	md := metadata.MD{}
	for _, h := range headers {
		name, value, ok := strings.Cut(h, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return nil, fmt.Errorf("dynamic: header %q: want \"name: value\"", h)
		}
		md.Append(strings.ToLower(name), strings.TrimSpace(value))
	}
	return md, nil
}
