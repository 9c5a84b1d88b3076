package backchannel

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/yamux"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/bcctl/bcctl/listenmux"
)

// magicBytes is what a multiplexing client writes after the transport
// handshake. It is exactly listenmux.MagicLen bytes.
const magicBytes = "backchannel"

// Server is the server that runs on the client side of a backchannel and
// answers the server's reverse calls. *grpc.Server implements it.
type Server interface {
	// Serve serves on the listener until Stop.
	Serve(net.Listener) error
	// Stop stops the server and closes its connections.
	Stop()
}

// ServerFactory returns the Server to run on a new connection's backchannel.
// It is called once per connection, and each connection's server is stopped
// when the connection closes, so it must return a new Server each time.
type ServerFactory func() Server

// ClientHandshaker performs the client side of the multiplexing handshake.
type ClientHandshaker struct {
	logger        *slog.Logger
	serverFactory ServerFactory
	cfg           Configuration
	unguarded     bool // no ping guard: only for benchmarks that measure it
	// streamTimeout and onStreamTimeout are WithStreamHandshakeTimeout's;
	// zero and nil without it.
	streamTimeout   time.Duration
	onStreamTimeout func()
	// streams routes server-opened streams by magic; nil without
	// WithStreamHandshaker.
	streams *listenmux.Mux
}

// NewClientHandshaker returns a ClientHandshaker that runs a server from
// serverFactory on the backchannel of every connection and logs multiplexing
// errors to logger (nil discards them). cfg is usually
// DefaultConfiguration(); its zero fields take DefaultConfiguration's
// values. opts go beyond Gitaly's parameters.
//
// What the server at the other end can make a connection spend is bounded
// by these defaults:
//   - yamux pings: PingBurst at once, PingsPerSecond after that, PingBurst
//     unanswered; a server beyond that budget is dropped (the connection
//     closes) with one warning on logger;
//   - server-opened streams waiting to be accepted: cfg.AcceptBacklog (256
//     by default); yamux resets the streams beyond it;
//   - with WithStreamHandshaker, MaxRoutingStreams streams being routed at
//     once, each for at most StreamHandshakeTimeout
//     (WithStreamHandshakeTimeout);
//   - each server-opened stream's window: cfg.MaximumStreamWindowSizeBytes
//     (256 KiB by default).
//
// Everything else a reverse connection costs is up to the server
// serverFactory returns, which accepts every stream the backchannel takes
// out of the backlog: facing a server you do not trust, give it
// grpc.MaxConcurrentStreams (grpc-go's default is unlimited),
// grpc.ConnectionTimeout (grpc-go's default, 120 s, is how long a stream
// that never sends its HTTP/2 preface holds a goroutine) and
// grpc.MaxRecvMsgSize (4 MiB by default), and bound the connections it
// serves at once in the net.Listener its Serve gets.
func NewClientHandshaker(logger *slog.Logger, serverFactory ServerFactory, cfg Configuration, opts ...ClientHandshakerOption) ClientHandshaker {
	ch := ClientHandshaker{logger: orDiscard(logger), serverFactory: serverFactory, cfg: cfg.withDefaults(DefaultConfiguration())}
	for _, opt := range opts {
		opt(&ch)
	}
	return ch
}

// ClientHandshake returns transport credentials that run creds' handshake,
// then the multiplexing handshake, and start the backchannel server on each
// connection. Use them with grpc.WithTransportCredentials.
func (ch ClientHandshaker) ClientHandshake(creds credentials.TransportCredentials) credentials.TransportCredentials {
	return clientCredentials{TransportCredentials: creds, ch: ch}
}

// clientCredentials wraps transport credentials with the client handshake.
type clientCredentials struct {
	credentials.TransportCredentials
	ch ClientHandshaker
}

// errServerHandshake is returned when client credentials are used on a server.
var errServerHandshake = errors.New("backchannel: client credentials cannot perform a server handshake")

func (cc clientCredentials) ServerHandshake(net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errServerHandshake
}

// Clone keeps the handshaker's logger, server factory and configuration.
func (cc clientCredentials) Clone() credentials.TransportCredentials {
	return clientCredentials{TransportCredentials: cc.TransportCredentials.Clone(), ch: cc.ch}
}

func (cc clientCredentials) ClientHandshake(ctx context.Context, authority string, rawConn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	if err := cc.ch.cfg.validate(); err != nil {
		return nil, nil, err
	}

	conn, authInfo, err := cc.TransportCredentials.ClientHandshake(ctx, authority, rawConn)
	if err != nil {
		return nil, nil, err
	}

	muxed, err := cc.ch.multiplex(ctx, conn)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	return muxed, authInfo, nil
}

// multiplex writes the magic, starts the yamux client session with the
// backchannel server on it and opens the forward stream. On error the
// caller closes conn; multiplex closes only what it opened.
func (ch ClientHandshaker) multiplex(ctx context.Context, conn net.Conn) (net.Conn, error) {
	deadline, _ := ctx.Deadline()
	if err := conn.SetWriteDeadline(deadline); err != nil {
		return nil, fmt.Errorf("backchannel: set handshake deadline: %w", err)
	}
	if _, err := conn.Write([]byte(magicBytes)); err != nil {
		return nil, fmt.Errorf("backchannel: write magic: %w", err)
	}
	if err := conn.SetWriteDeadline(time.Time{}); err != nil {
		return nil, fmt.Errorf("backchannel: clear handshake deadline: %w", err)
	}

	var ended sessionCloser
	session, err := yamux.Client(guardPings(newCoalescingConn(conn, ended.onClosed), ch.logger, ch.unguarded), ch.cfg.yamuxConfig(ch.logger))
	if err != nil {
		return nil, fmt.Errorf("backchannel: start yamux client: %w", err)
	}

	// The server may open reverse streams at once, even before it
	// acknowledges the forward stream, so serve before opening it.
	var lis net.Listener = session
	var router *streamRouter
	if ch.streams != nil {
		router = newStreamRouter(session, ch)
		lis = router
	}
	server := ch.serverFactory()
	served := make(chan struct{})
	var serveErr error // written before served is closed
	go func() {
		defer close(served)
		// A server's Accept fails when the session ends, whoever ended it
		// and however (the peer's hang-up reads as EOF): that is the
		// connection's end, not the server's failure.
		if err := server.Serve(lis); err != nil && !session.IsClosed() && !isClosedSession(err) {
			serveErr = fmt.Errorf("backchannel: backchannel server: %w", err)
			// gRPC ignores what a transport's Close returns, so the log
			// is where a failing server shows when gRPC closes it.
			ch.logger.Warn("backchannel server stopped", "error", err)
		}
	}()

	var stopOnce sync.Once
	var stopErr error
	stop := func() error {
		stopOnce.Do(func() {
			server.Stop()
			// Serve may not have started when Stop ran; closing the
			// session ends it either way, and closes conn.
			closeErr := session.Close()
			<-served
			if router != nil {
				router.wait()
			}
			stopErr = cmp.Or(serveErr, closeErr)
		})
		return stopErr
	}

	stream, err := session.Open()
	if err != nil {
		stop()
		return nil, fmt.Errorf("backchannel: open forward stream: %w", err)
	}

	muxed := &closeFuncConn{Conn: stream, cleanup: stop}
	ended.set(session, muxed)
	return muxed, nil
}

// isClosedSession tells whether err only says that the session or the
// server was closed, which is how every backchannel server ends.
func isClosedSession(err error) bool {
	return errors.Is(err, yamux.ErrSessionShutdown) || errors.Is(err, grpc.ErrServerStopped) || errors.Is(err, net.ErrClosed)
}
