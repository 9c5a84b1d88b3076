package sidechannel

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/listenmux"
)

// RegisterSidechannel registers a pending sidechannel in registry and
// returns ctx with its ID appended to the outgoing MetadataKey, for the
// call that may open it. callback runs as for Registry.Register; the
// sidechannel's stream is closed when ctx ends, so a call's deadline or
// cancellation ends a callback blocked on the stream. Close the Waiter
// when the call has returned: if the call succeeded, its error is the
// call's.
func RegisterSidechannel(ctx context.Context, registry *Registry, callback func(*ClientConn) error) (context.Context, *Waiter) {
	w := registry.register(ctx, callback)
	return metadata.AppendToOutgoingContext(ctx, MetadataKey, strconv.FormatInt(w.id, 10)), w
}

// ServerHandshaker is the client's end of the opening handshake, and a
// listenmux.Handshaker for the magic "sidechannel". The name is Gitaly's:
// it handshakes the streams that reach the client's backchannel server.
// Give it to the client's backchannel with backchannel.WithStreamHandshaker
// (NewClientHandshaker does), or register it with a listenmux.Mux that is
// the backchannel server's transport credentials, as Gitaly does.
type ServerHandshaker struct {
	registry *Registry
}

var _ listenmux.Handshaker = (*ServerHandshaker)(nil)

// NewServerHandshaker returns a ServerHandshaker that hands each
// sidechannel to the pending call in registry with the stream's ID.
func NewServerHandshaker(registry *Registry) *ServerHandshaker {
	return &ServerHandshaker{registry: registry}
}

// Magic returns "sidechannel".
func (s *ServerHandshaker) Magic() string { return magic }

// Handshake reads the stream's ID, takes its waiter out of the registry,
// acknowledges with "ok" and starts the waiter's callback on the stream.
// It returns credentials.ErrConnDispatched: the stream is the callback's.
// An unknown ID or a failed acknowledgement returns an error, and the
// stream is closed without a word.
func (s *ServerHandshaker) Handshake(conn net.Conn, _ credentials.AuthInfo) (net.Conn, credentials.AuthInfo, error) {
	var idBytes [idLen]byte
	if _, err := io.ReadFull(conn, idBytes[:]); err != nil {
		return nil, nil, fmt.Errorf("sidechannel: read ID: %w", err)
	}
	id := int64(binary.BigEndian.Uint64(idBytes[:]))
	w, ok := s.registry.take(id)
	if !ok {
		return nil, nil, fmt.Errorf("%w: %d", ErrUnknownID, id)
	}
	if w.ctx != nil && w.ctx.Err() != nil {
		err := fmt.Errorf("sidechannel %d: the call ended before the server opened it: %w", id, context.Cause(w.ctx))
		w.finish(err)
		return nil, nil, err
	}
	if err := acknowledge(conn); err != nil {
		err = fmt.Errorf("sidechannel %d: acknowledge: %w", id, err)
		w.finish(err)
		return nil, nil, err
	}
	go w.run(conn)
	return nil, nil, credentials.ErrConnDispatched
}

// acknowledge writes "ok" within HandshakeTimeout and leaves the stream
// without deadlines.
func acknowledge(conn net.Conn) error {
	if err := conn.SetWriteDeadline(time.Now().Add(HandshakeTimeout)); err != nil {
		return err
	}
	if _, err := io.WriteString(conn, ack); err != nil {
		return err
	}
	return conn.SetDeadline(time.Time{})
}

// ClientConfiguration returns the yamux settings of Gitaly's sidechannel
// clients: yamux's defaults (a 256 KiB window; Gitaly went back to it
// because 16 MiB per sidechannel stream cost Praefect too much memory) with
// a stream close timeout of one second, so that a client that stops
// reading early resets the stream soon instead of holding the server's
// writer for yamux's five minutes.
func ClientConfiguration() backchannel.Configuration {
	cfg := backchannel.DefaultConfiguration()
	cfg.StreamCloseTimeout = time.Second
	return cfg
}

// NewClientHandshaker returns a backchannel client handshaker whose
// connections hand sidechannel streams to the waiters of registry; every
// other stream the server opens is reverse gRPC, served by a server from
// serverFactory (nil: a grpc.Server without services, as Gitaly's
// sidechannel client has). cfg is usually ClientConfiguration(); opts are
// added after the sidechannel's stream handshaker.
func NewClientHandshaker(logger *slog.Logger, registry *Registry, serverFactory backchannel.ServerFactory, cfg backchannel.Configuration, opts ...backchannel.ClientHandshakerOption) backchannel.ClientHandshaker {
	if serverFactory == nil {
		serverFactory = func() backchannel.Server { return grpc.NewServer() }
	}
	opts = append([]backchannel.ClientHandshakerOption{backchannel.WithStreamHandshaker(NewServerHandshaker(registry))}, opts...)
	return backchannel.NewClientHandshaker(logger, serverFactory, cfg, opts...)
}

// ClientConn is the client's end of a sidechannel, handed to the callback
// of a Waiter. What it writes is framed into packets; CloseWrite ends the
// body with the flush packet. What it reads is the server's response, raw,
// up to io.EOF when the server closes the sidechannel. Read and Write may
// run in different goroutines, and should: a server may answer before it
// has read the whole body.
type ClientConn struct {
	conn net.Conn

	mu          sync.Mutex // serialises writes; guards w and writeClosed
	w           packetWriter
	writeClosed bool
}

var _ io.ReadWriteCloser = (*ClientConn)(nil)

func newClientConn(conn net.Conn) *ClientConn {
	return &ClientConn{conn: conn, w: packetWriter{w: conn}}
}

// Read reads the server's response.
func (c *ClientConn) Read(p []byte) (int, error) { return c.conn.Read(p) }

// Write sends p as packets of the body.
func (c *ClientConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.writeClosed {
		return 0, ErrWriteClosed
	}
	n, err := c.w.Write(p)
	if err != nil {
		return n, fmt.Errorf("sidechannel: write body: %w", err)
	}
	return n, nil
}

// ReadFrom sends what r yields as packets of the body, without the extra
// copy of Write; io.Copy uses it.
func (c *ClientConn) ReadFrom(r io.Reader) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.writeClosed {
		return 0, ErrWriteClosed
	}
	n, err := c.w.ReadFrom(r)
	if err != nil {
		return n, fmt.Errorf("sidechannel: write body: %w", err)
	}
	return n, nil
}

// CloseWrite ends the body with the flush packet; nothing can be written
// after it. The stream stays open for reading: yamux has no half-close.
// Calling it again does nothing.
func (c *ClientConn) CloseWrite() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.writeClosed {
		return nil
	}
	c.writeClosed = true
	if err := c.w.flush(); err != nil {
		return fmt.Errorf("sidechannel: write flush packet: %w", err)
	}
	return nil
}

// Close closes the sidechannel. The callback need not call it: the stream
// is closed when the callback returns.
func (c *ClientConn) Close() error { return c.conn.Close() }

// abort ends every Read and Write blocked on conn, now and later, and
// closes it. Closing alone is not enough: a yamux stream closed on one side
// still reads until the other side closes too.
func abort(conn net.Conn) {
	conn.SetDeadline(time.Now())
	conn.Close()
}

// withCause adds why ctx ended to err, when it did; the stream was closed
// because of it.
func withCause(ctx context.Context, err error) error {
	if err == nil || ctx == nil || ctx.Err() == nil || errors.Is(err, ctx.Err()) {
		return err
	}
	return fmt.Errorf("%w (the call ended: %w)", err, context.Cause(ctx))
}
