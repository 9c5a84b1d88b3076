package backchannel

import (
	"cmp"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/yamux"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/bcctl/bcctl/listenmux"
)

// ClientHandshakerOption configures a ClientHandshaker beyond Gitaly's
// parameters.
type ClientHandshakerOption func(*ClientHandshaker)

// WithStreamHandshaker routes the streams the server opens that begin with
// h.Magic() to h instead of the backchannel server; every other stream,
// reverse gRPC included, reaches the backchannel server as before, its
// first bytes replayed. This is how the client side of Gitaly's
// sidechannel (package sidechannel) takes over its streams.
//
// h is called as a listenmux.Mux calls it: after the magic has been read,
// with a deadline on the stream (StreamHandshakeTimeout, or
// WithStreamHandshakeTimeout's) until it returns, which is then cleared. A
// handshaker that keeps the stream returns
// credentials.ErrConnDispatched and closes the stream when it is done; any
// other error closes the stream at once, and a connection it returns is
// served by the backchannel server.
//
// Without this option (Gitaly's behaviour) every server-opened stream goes
// straight to the backchannel server. With it, each stream is read by a
// goroutine of its own until its first bytes have arrived, so that a slow
// stream holds up no other.
func WithStreamHandshaker(h listenmux.Handshaker) ClientHandshakerOption {
	return func(ch *ClientHandshaker) {
		if ch.streams == nil {
			ch.streams = listenmux.New(insecure.NewCredentials())
		}
		ch.streams.Register(h)
	}
}

// StreamHandshakeTimeout bounds how long a server-opened stream may take to
// send its first listenmux.MagicLen bytes, and a stream handshaker to run,
// when a ClientHandshaker routes streams (WithStreamHandshaker), unless
// WithStreamHandshakeTimeout says otherwise. It is grpc-go's default
// server connection timeout, the bound a gRPC server would put on the same
// reads.
const StreamHandshakeTimeout = 120 * time.Second

// WithStreamHandshakeTimeout replaces StreamHandshakeTimeout when the
// ClientHandshaker routes streams (WithStreamHandshaker): a server-opened
// stream that has not sent its first listenmux.MagicLen bytes, and been
// through its stream handshaker, within d is closed; d <= 0 keeps
// StreamHandshakeTimeout. onTimeout, when not nil, is called for each
// stream closed so (from the goroutine that routed it), so that the
// caller can report it; without it such streams are logged at the debug
// level only. Without WithStreamHandshaker the option does nothing: the
// backchannel server's own handshake timeout applies.
func WithStreamHandshakeTimeout(d time.Duration, onTimeout func()) ClientHandshakerOption {
	return func(ch *ClientHandshaker) {
		if d > 0 {
			ch.streamTimeout = d
		}
		ch.onStreamTimeout = onTimeout
	}
}

// MaxRoutingStreams bounds the server-opened streams a ClientHandshaker
// that routes streams (WithStreamHandshaker) holds at once while it reads
// their first bytes or waits for the backchannel server to accept them.
// Further streams wait in yamux's accept backlog (Configuration's
// AcceptBacklog), beyond which yamux resets them: a server that opens
// streams and sends nothing on them costs at most this many goroutines.
const MaxRoutingStreams = 16

// streamRouter is the net.Listener the backchannel server serves on when
// stream handshakers are registered. It accepts the session's streams as
// they come, up to MaxRoutingStreams being routed at once (yamux
// acknowledges a stream when it is accepted), routes each in a goroutine of
// its own, and hands the streams that stay with gRPC to Accept.
type streamRouter struct {
	session   *yamux.Session
	mux       *listenmux.Mux
	logger    *slog.Logger
	timeout   time.Duration // StreamHandshakeTimeout, or the option's
	onTimeout func()        // nil: timeouts are only logged

	conns    chan net.Conn // streams for the backchannel server
	routing  chan struct{} // a slot per stream being routed
	done     chan struct{} // closed when the router stops accepting
	doneOnce sync.Once
	err      error // why the router stopped; written before done is closed

	wg sync.WaitGroup // the accept loop and every routing goroutine
}

var _ net.Listener = (*streamRouter)(nil)

// newStreamRouter starts routing session's streams through mux.
func newStreamRouter(session *yamux.Session, ch ClientHandshaker) *streamRouter {
	r := &streamRouter{
		session:   session,
		mux:       ch.streams,
		logger:    ch.logger,
		timeout:   cmp.Or(ch.streamTimeout, StreamHandshakeTimeout),
		onTimeout: ch.onStreamTimeout,
		conns:     make(chan net.Conn),
		routing:   make(chan struct{}, MaxRoutingStreams),
		done:      make(chan struct{}),
	}
	r.wg.Add(1)
	go r.acceptLoop()
	return r
}

func (r *streamRouter) acceptLoop() {
	defer r.wg.Done()
	for {
		// The loop runs until the session ends, also after Close: the
		// handshakers' streams (sidechannels) still come, and the others
		// must be refused promptly rather than left unacknowledged.
		select {
		case r.routing <- struct{}{}:
		case <-r.session.CloseChan():
			r.stop(yamux.ErrSessionShutdown)
			return
		}
		stream, err := r.session.AcceptStream()
		if err != nil {
			r.stop(err)
			return
		}
		r.wg.Add(1)
		go r.route(stream)
	}
}

// route hands stream to its handshaker, or to Accept.
func (r *streamRouter) route(stream *yamux.Stream) {
	defer r.wg.Done()
	defer func() { <-r.routing }()
	stream.SetDeadline(time.Now().Add(r.timeout))
	conn, _, err := r.mux.ServerHandshake(stream)
	stream.SetDeadline(time.Time{})
	var ne net.Error
	switch {
	case errors.Is(err, credentials.ErrConnDispatched):
		return
	case err != nil:
		// The mux has closed the stream.
		r.logger.Debug("backchannel: server-opened stream refused", "stream", stream.StreamID(), "error", err)
		if errors.As(err, &ne) && ne.Timeout() && r.onTimeout != nil {
			r.onTimeout()
		}
		return
	}
	select {
	case r.conns <- conn:
	case <-r.done:
		conn.Close()
	}
}

// Accept returns the next stream for the backchannel server.
func (r *streamRouter) Accept() (net.Conn, error) {
	select {
	case conn := <-r.conns:
		return conn, nil
	case <-r.done:
		return nil, r.err
	}
}

// Close stops Accept. It leaves the session open: grpc.Server closes its
// listeners first when it stops, and closing the session there would cut
// the answers still on their way (and the sidechannels). The connection's
// own close closes the session, after the backchannel server has stopped.
func (r *streamRouter) Close() error {
	r.stop(net.ErrClosed)
	return nil
}

// IsClosed reports whether the session has ended, as yamux.Session's
// IsClosed does.
func (r *streamRouter) IsClosed() bool { return r.session.IsClosed() }

// Addr is the session's address.
func (r *streamRouter) Addr() net.Addr { return r.session.Addr() }

func (r *streamRouter) stop(err error) {
	r.doneOnce.Do(func() {
		r.err = err
		close(r.done)
	})
}

// wait returns when the accept loop and every routing goroutine have
// ended; the session must be closed.
func (r *streamRouter) wait() { r.wg.Wait() }
