package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/hashicorp/yamux"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/dynamic"
)

// Backchannel is what a connection hosts on its backchannel.
type Backchannel struct {
	// Services are answered by Responder; reflection and health are served
	// for them too.
	Services []protoreflect.ServiceDescriptor
	// Files are more files for reflection to serve (the whole hosted
	// schema, say, so the upstream can describe every type).
	Files []protoreflect.FileDescriptor
	// Responder answers every call to a method of Services: a script
	// engine, or anything else (the TUI queues calls for a person and
	// falls back to the script engine).
	Responder dynamic.Responder
	// Unhosted gives the status of a call to a method that is not hosted;
	// nil answers UNIMPLEMENTED naming the hosted services.
	Unhosted func(method string) *status.Status
	// Observer is told of each call answered by Unhosted, as a reverse call
	// answered with no rule. (The Responder reports its own calls.)
	Observer calls.Observer
	// ServerOptions are added to the backchannel's grpc.Server.
	ServerOptions []grpc.ServerOption
}

// Host makes the backchannel serve b. Reverse calls that arrived before are
// answered now. It can be called once. Services named like the reflection
// and health services, which the backchannel serves itself, are left out.
func (c *Conn) Host(b Backchannel) error {
	if b.Responder == nil {
		return errors.New("host: Backchannel.Responder is nil")
	}
	seen := map[protoreflect.FullName]bool{}
	services := make([]protoreflect.ServiceDescriptor, 0, len(b.Services))
	for _, sd := range b.Services {
		name := sd.FullName()
		if builtIn(name) {
			continue
		}
		if seen[name] {
			return fmt.Errorf("host: service %s is given twice", name)
		}
		seen[name] = true
		services = append(services, sd)
	}
	b.Services = services
	return c.bc.host(&b)
}

// builtIn reports the services every backchannel serves itself.
func builtIn(name protoreflect.FullName) bool {
	return name == "grpc.health.v1.Health" || strings.HasPrefix(string(name), "grpc.reflection.")
}

// BackchannelClosed reports whether the multiplexed session that brings
// the reverse calls has ended (the server went away, or Close). When a
// reverse call's context ends because the connection closed, the session
// is already closed: yamux marks it closed before it closes its streams.
func (c *Conn) BackchannelClosed() bool {
	c.bc.mu.Lock()
	s := c.bc.session
	c.bc.mu.Unlock()
	return s != nil && s.IsClosed()
}

// ReverseCalls returns how many reverse calls the backchannel has finished
// answering (reflection and health calls are not counted).
func (c *Conn) ReverseCalls() int { return c.bc.calls.get() }

// WaitReverseCalls blocks until n reverse calls have been answered, or ctx
// is done.
func (c *Conn) WaitReverseCalls(ctx context.Context, n int) error {
	return c.bc.calls.wait(ctx, n)
}

// backchannelServer creates the server of each multiplexed connection. A
// connection made before Host is called gets a server that waits for it.
type backchannelServer struct {
	logger  *slog.Logger
	maxRecv int
	limits  *limitWarnings
	calls   counter

	mu      sync.Mutex
	spec    *Backchannel
	ready   chan struct{} // closed by host
	stopped chan struct{} // closed by stop
	done    bool
	session closer // the latest multiplexed session served
}

// closer is a yamux session, as far as the backchannel server looks.
type closer interface{ IsClosed() bool }

func newBackchannelServer(logger *slog.Logger, maxRecv int, limits Limits) *backchannelServer {
	return &backchannelServer{
		logger: logger, maxRecv: maxRecv,
		limits: &limitWarnings{logger: logger, limits: limits, maxRecv: maxRecv},
		ready:  make(chan struct{}), stopped: make(chan struct{}),
		calls: counter{ch: make(chan struct{})},
	}
}

func (b *backchannelServer) host(spec *Backchannel) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.spec != nil {
		return errors.New("host: the backchannel is already hosted")
	}
	b.spec = spec
	close(b.ready)
	return nil
}

func (b *backchannelServer) stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.done {
		b.done = true
		close(b.stopped)
	}
}

// factory is the backchannel.ServerFactory of the connection.
func (b *backchannelServer) factory() backchannel.Server {
	return &lazyServer{b: b, stopCh: make(chan struct{})}
}

// build returns the grpc.Server for spec.
func (b *backchannelServer) build(spec *Backchannel) (*grpc.Server, error) {
	opts := []grpc.ServerOption{
		grpc.UnknownServiceHandler(b.unhosted(spec)),
		grpc.ChainUnaryInterceptor(b.countUnary),
		grpc.ChainStreamInterceptor(b.countStream),
	}
	if b.maxRecv > 0 {
		opts = append(opts, grpc.MaxRecvMsgSize(b.maxRecv))
	}
	opts = append(opts, b.limits.serverOptions(spec.Observer)...)
	opts = append(opts, spec.ServerOptions...)
	srv := grpc.NewServer(opts...)
	if err := dynamic.RegisterServices(srv, spec.Services, spec.Responder, dynamic.WithLogger(b.logger)); err != nil {
		return nil, fmt.Errorf("host: %w", err)
	}
	dynamic.RegisterReflection(srv, spec.Services, spec.Files...)
	dynamic.RegisterHealth(srv, spec.Services)
	return srv, nil
}

// unhosted answers calls to methods the backchannel does not serve.
func (b *backchannelServer) unhosted(spec *Backchannel) grpc.StreamHandler {
	hosted := make([]string, 0, len(spec.Services))
	for _, s := range spec.Services {
		hosted = append(hosted, string(s.FullName()))
	}
	sort.Strings(hosted)
	return func(_ any, stream grpc.ServerStream) error {
		dynamic.MarkReached(stream.Context())
		start := time.Now()
		full, _ := grpc.MethodFromServerStream(stream)
		method := strings.TrimPrefix(full, "/")
		var st *status.Status
		if spec.Unhosted != nil {
			st = spec.Unhosted(method)
		}
		if st == nil {
			if len(hosted) == 0 {
				st = status.Newf(codes.Unimplemented, "the backchannel hosts no services, so not %s", method)
			} else {
				st = status.Newf(codes.Unimplemented, "the backchannel does not host %s (it hosts %s)", method, strings.Join(hosted, ", "))
			}
		}
		if spec.Observer != nil {
			ctx := stream.Context()
			md, _ := metadata.FromIncomingContext(ctx)
			if md == nil {
				md = metadata.MD{}
			}
			spec.Observer.ObserveCall(&calls.Event{
				Dir: calls.Reverse, Origin: calls.Answered, Peer: callPeer(ctx), Method: method,
				Metadata: md, Status: st, Start: start, Duration: time.Since(start),
			})
		}
		return st.Err()
	}
}

// callPeer is who made the reverse call of ctx: the server, at the
// connection's address.
func callPeer(ctx context.Context) calls.Peer {
	var p calls.Peer
	if pr, ok := peer.FromContext(ctx); ok && pr.Addr != nil {
		p.Addr = pr.Addr.String()
	}
	return p
}

// counted reports whether a method's calls count as reverse calls:
// reflection and health checks are the upstream looking at the client, not
// calls for the client to answer.
func counted(fullMethod string) bool {
	return !strings.HasPrefix(fullMethod, "/grpc.reflection.") && !strings.HasPrefix(fullMethod, "/grpc.health.")
}

func (b *backchannelServer) countUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	if counted(info.FullMethod) {
		b.calls.inc()
	}
	return resp, err
}

func (b *backchannelServer) countStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	err := handler(srv, ss)
	if counted(info.FullMethod) {
		b.calls.inc()
	}
	return err
}

// lazyServer is the backchannel.Server of one connection: it waits for
// the backchannel to be hosted, then serves.
type lazyServer struct {
	b      *backchannelServer
	mu     sync.Mutex
	srv    *grpc.Server
	stopCh chan struct{}
	halted bool
}

func (l *lazyServer) Serve(lis net.Listener) error {
	if s, ok := lis.(closer); ok {
		l.b.mu.Lock()
		l.b.session = s
		l.b.mu.Unlock()
	}
	select {
	case <-l.b.ready:
	case <-l.stopCh:
		return nil
	case <-l.b.stopped:
		return nil
	}
	l.b.mu.Lock()
	spec := l.b.spec
	l.b.mu.Unlock()
	srv, err := l.b.build(spec)
	if err != nil {
		l.b.logger.Error("host: cannot serve the backchannel", "error", err)
		return err
	}
	l.mu.Lock()
	if l.halted {
		l.mu.Unlock()
		return nil
	}
	l.srv = srv
	l.mu.Unlock()
	return srv.Serve(newLimitListener(keepOpen(lis), l.b.limits))
}

// streamAcceptor is a yamux session.
type streamAcceptor interface {
	AcceptStreamWithContext(ctx context.Context) (*yamux.Stream, error)
}

// keepOpen returns a listener whose Close stops Accept without closing the
// yamux session: grpc.Server closes its listeners first when it stops, and
// closing the session would cut the answers still on their way. The
// backchannel closes the session itself once the server has stopped.
func keepOpen(lis net.Listener) net.Listener {
	acc, ok := lis.(streamAcceptor)
	if !ok {
		return lis
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &sessionListener{Listener: lis, acc: acc, ctx: ctx, cancel: cancel}
}

type sessionListener struct {
	net.Listener
	acc    streamAcceptor
	ctx    context.Context
	cancel context.CancelFunc
}

func (l *sessionListener) Accept() (net.Conn, error) {
	st, err := l.acc.AcceptStreamWithContext(l.ctx)
	if err != nil {
		if l.ctx.Err() != nil {
			return nil, net.ErrClosed
		}
		return nil, err
	}
	return st, nil
}

func (l *sessionListener) Close() error {
	l.cancel()
	return nil
}

// gracePeriod bounds how long closing a connection waits for reverse calls
// in flight, and for answers already given to reach the server.
const gracePeriod = time.Second

// Stop stops the server gracefully: answers already given are flushed and
// calls in flight may finish (the server closes its side of the
// backchannel when it sees the GOAWAY), for at most gracePeriod.
func (l *lazyServer) Stop() {
	l.mu.Lock()
	if l.halted {
		l.mu.Unlock()
		return
	}
	l.halted = true
	close(l.stopCh)
	srv := l.srv
	l.mu.Unlock()
	if srv == nil {
		return
	}
	done := make(chan struct{})
	go func() {
		srv.GracefulStop()
		close(done)
	}()
	t := time.NewTimer(gracePeriod)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		srv.Stop()
		<-done
	}
}

// counter counts finished reverse calls and lets callers wait for a count.
type counter struct {
	mu sync.Mutex
	n  int
	ch chan struct{} // closed and replaced on every increment
}

func (c *counter) inc() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	close(c.ch)
	c.ch = make(chan struct{})
}

func (c *counter) get() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func (c *counter) wait(ctx context.Context, n int) error {
	for {
		c.mu.Lock()
		got, ch := c.n, c.ch
		c.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}
