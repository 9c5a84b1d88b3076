package host

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/dynamic"
)

// Limits bound what the server can make the backchannel server that a Conn
// hosts spend. A zero field means its default. At most MaxReverseConns ×
// MaxReverseCalls requests of up to Config.MaxRecvMsgSize bytes are
// received at once (2 × 16 × 4 MiB = 128 MiB by default).
type Limits struct {
	// MaxReverseCalls is how many reverse calls may be in flight on one
	// reverse connection (HTTP/2's SETTINGS_MAX_CONCURRENT_STREAMS). A gRPC
	// server queues its calls beyond it; a stream opened beyond it is
	// refused. Default DefaultMaxReverseCalls.
	MaxReverseCalls uint32
	// MaxReverseConns is how many reverse connections (the streams the
	// server opens to reach the backchannel) may be open at once, those
	// still in their HTTP/2 handshake included. Further streams wait in
	// yamux's accept backlog (Config.Backchannel.AcceptBacklog,
	// DefaultAcceptBacklog unless given), beyond which yamux resets them.
	// Default DefaultMaxReverseConns.
	MaxReverseConns int
	// HandshakeTimeout bounds how long a reverse connection may take to
	// send its HTTP/2 preface and settings, and, with
	// Config.StreamHandshakers, how long a stream the server opens may
	// take to send its first bytes. Default: Config.ConnectTimeout.
	HandshakeTimeout time.Duration
}

// The defaults of Limits, and of the yamux accept backlog of the
// backchannel session. A Gitaly-like server keeps one reverse connection
// per client and makes a few reverse calls at a time (one vote per forward
// call in flight).
const (
	DefaultMaxReverseCalls = 16
	DefaultMaxReverseConns = 2
	DefaultAcceptBacklog   = 16
)

func (l Limits) withDefaults(connectTimeout time.Duration) Limits {
	if l.MaxReverseCalls == 0 {
		l.MaxReverseCalls = DefaultMaxReverseCalls
	}
	if l.MaxReverseConns <= 0 {
		l.MaxReverseConns = DefaultMaxReverseConns
	}
	if l.HandshakeTimeout <= 0 {
		l.HandshakeTimeout = connectTimeout
	}
	return l
}

// limitWarnings prints one warning per limit the server reaches, the
// first time it does, naming the flag that raises it.
type limitWarnings struct {
	logger  *slog.Logger
	limits  Limits
	maxRecv int
	// backlog is the yamux accept backlog of the session: how many
	// reverse connections wait beyond MaxReverseConns before yamux resets
	// the next.
	backlog                    int
	conns, calls, hs, recvSize sync.Once
}

func (w *limitWarnings) reverseConns() {
	w.conns.Do(func() {
		w.logger.Warn("the server opened more reverse connections at once than the backchannel allows; the others wait, and beyond the backlog are reset (--max-reverse-conns)",
			"limit", w.limits.MaxReverseConns, "backlog", w.backlog)
	})
}

func (w *limitWarnings) reverseCalls() {
	w.calls.Do(func() {
		w.logger.Warn("the server has as many reverse calls in flight on one connection as the backchannel allows; it queues the others (--max-reverse-calls)",
			"limit", w.limits.MaxReverseCalls)
	})
}

func (w *limitWarnings) handshake() {
	w.hs.Do(func() {
		w.logger.Warn("the server opened a reverse connection and sent no HTTP/2 preface in time; it was closed (--connect-timeout)",
			"timeout", w.limits.HandshakeTimeout)
	})
}

func (w *limitWarnings) requestSize() {
	w.recvSize.Do(func() {
		w.logger.Warn("the server sent a reverse call whose request is larger than the backchannel accepts; the call was refused with RESOURCE_EXHAUSTED (--max-msg-sz)",
			"limit_bytes", cmp.Or(w.maxRecv, defaultMaxRecv))
	})
}

// defaultMaxRecv is grpc-go's default receive limit, used when
// Config.MaxRecvMsgSize is zero.
const defaultMaxRecv = 4 << 20

// serverOptions are the options of the hosted grpc.Server that enforce the
// limits and report reaching them. A reverse call that ends before a
// handler had it (refused for its size, a request the codec could not
// decode) is reported to observer, when set, as a reverse call answered
// by no rule.
func (w *limitWarnings) serverOptions(observer calls.Observer) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxConcurrentStreams(w.limits.MaxReverseCalls),
		grpc.ConnectionTimeout(w.limits.HandshakeTimeout),
		grpc.StatsHandler(&limitStats{w: w}),
		grpc.StatsHandler(dynamic.UnreachedCalls{Report: func(ctx context.Context, c dynamic.UnreachedCall) {
			if c.Status.Code() == codes.ResourceExhausted {
				w.requestSize()
			}
			if observer != nil {
				observer.ObserveCall(&calls.Event{
					Dir: calls.Reverse, Origin: calls.Answered, Peer: callPeer(ctx), Method: c.Method,
					Metadata: c.Metadata, Status: c.Status, Start: c.Start, Duration: c.Duration,
				})
			}
		}}),
		grpc.ChainStreamInterceptor(w.watchRecv),
	}
}

// limitListener admits at most limit connections at once: a connection
// accepted while limit are open waits for one of them to close (so at most
// limit+1 are held; the others wait in yamux's backlog). Its Close stops
// the wait and closes lis.
type limitListener struct {
	net.Listener
	slots  chan struct{}
	w      *limitWarnings
	closed chan struct{}
	once   sync.Once
}

func newLimitListener(lis net.Listener, w *limitWarnings) *limitListener {
	return &limitListener{Listener: lis, slots: make(chan struct{}, w.limits.MaxReverseConns), w: w, closed: make(chan struct{})}
}

func (l *limitListener) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	select {
	case l.slots <- struct{}{}:
	default:
		l.w.reverseConns()
		select {
		case l.slots <- struct{}{}:
		case <-l.closed:
			conn.Close()
			return nil, net.ErrClosed
		}
	}
	return &limitedConn{Conn: conn, release: func() { <-l.slots }, w: l.w}, nil
}

func (l *limitListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// limitedConn is one reverse connection: closing it frees its slot, and a
// read that times out (gRPC's handshake deadline, the only deadline on a
// server connection) is reported.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
	w       *limitWarnings
}

func (c *limitedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.w.handshake()
	}
	return n, err
}

func (c *limitedConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

// limitStats counts the reverse calls in flight on each connection.
type limitStats struct{ w *limitWarnings }

type inFlightKey struct{}

func (s *limitStats) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return context.WithValue(ctx, inFlightKey{}, new(atomic.Int64))
}

func (s *limitStats) HandleConn(context.Context, stats.ConnStats) {}

func (s *limitStats) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }

func (s *limitStats) HandleRPC(ctx context.Context, rs stats.RPCStats) {
	inFlight, ok := ctx.Value(inFlightKey{}).(*atomic.Int64)
	if !ok {
		return
	}
	switch rs.(type) {
	case *stats.Begin:
		if inFlight.Add(1) >= int64(s.w.limits.MaxReverseCalls) {
			s.w.reverseCalls()
		}
	case *stats.End:
		inFlight.Add(-1)
	}
}

// watchRecv reports streamed requests refused for their size: an error
// from RecvMsg comes from gRPC, never from the handler.
func (w *limitWarnings) watchRecv(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, &recvWatch{ServerStream: ss, w: w})
}

type recvWatch struct {
	grpc.ServerStream
	w *limitWarnings
}

func (r *recvWatch) RecvMsg(m any) error {
	err := r.ServerStream.RecvMsg(m)
	if status.Code(err) == codes.ResourceExhausted {
		r.w.requestSize()
	}
	return err
}
