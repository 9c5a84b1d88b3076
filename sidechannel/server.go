package sidechannel

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/bcctl/bcctl/backchannel"
)

// OpenSidechannel opens the sidechannel of the call in ctx, from inside
// its handler: it takes the last MetadataKey value as the ID, opens a
// stream on the caller's yamux session, writes the preamble ("sidechannel"
// and the ID as a big-endian int64) and requires the client's "ok" within
// HandshakeTimeout.
//
// It fails with ErrMissingID when the call carries no ID,
// backchannel.ErrNonMultiplexedConnection when it came over a plain
// connection, and ErrNotAcknowledged when the client does not take the
// sidechannel. A value that is not a decimal number counts as ID 0, as in
// Gitaly.
//
// The sidechannel lives as long as ctx: when the call ends, the stream is
// closed and a Read or Write blocked on it (a client that never reads,
// or never ends its body) fails saying so. Close it before the handler
// returns its response.
func OpenSidechannel(ctx context.Context) (*ServerConn, error) {
	id, err := idFromMetadata(ctx)
	if err != nil {
		return nil, err
	}
	session, err := backchannel.GetYamuxSession(ctx)
	if err != nil {
		return nil, fmt.Errorf("sidechannel: open: %w", err)
	}
	stream, err := session.OpenStream()
	if err != nil {
		return nil, fmt.Errorf("sidechannel: open stream: %w", err)
	}
	c := &ServerConn{
		id:     id,
		ctx:    ctx,
		stream: stream,
		r:      packetReader{r: stream},
		stop:   context.AfterFunc(ctx, func() { abort(stream) }),
	}
	if err := c.handshake(); err != nil {
		c.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("sidechannel %d: open: the call ended: %w", id, context.Cause(ctx))
		}
		return nil, err
	}
	return c, nil
}

// ServerConn is the server's end of a sidechannel. Read returns the
// client's body, unframed, and io.EOF after its flush packet; Write sends
// the response raw; Close ends the response. Read and Write may run in
// different goroutines.
type ServerConn struct {
	id     int64
	ctx    context.Context
	stream *yamux.Stream
	stop   func() bool // releases the close on ctx's end

	r packetReader // used by Read only

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

var _ io.ReadWriteCloser = (*ServerConn)(nil)

// handshake writes the preamble and requires the acknowledgement.
func (c *ServerConn) handshake() error {
	if err := c.stream.SetDeadline(time.Now().Add(HandshakeTimeout)); err != nil {
		return fmt.Errorf("sidechannel: set handshake deadline: %w", err)
	}
	preamble := make([]byte, len(magic)+idLen)
	copy(preamble, magic)
	binary.BigEndian.PutUint64(preamble[len(magic):], uint64(c.id))
	if _, err := c.stream.Write(preamble); err != nil {
		return fmt.Errorf("sidechannel %d: write preamble: %w", c.id, err)
	}

	var got [len(ack)]byte
	n, err := io.ReadFull(c.stream, got[:])
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: sidechannel %d: the client closed the stream after %q (it has no pending sidechannel with this ID): %w", ErrNotAcknowledged, c.id, got[:n], err)
	case errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, yamux.ErrTimeout):
		return fmt.Errorf("%w: sidechannel %d: no answer within %v: %w", ErrNotAcknowledged, c.id, HandshakeTimeout, err)
	case err != nil:
		return fmt.Errorf("%w: sidechannel %d: %w", ErrNotAcknowledged, c.id, err)
	case string(got[:]) != ack:
		return fmt.Errorf("%w: sidechannel %d: got %q, want %q (a client that does not route sidechannel streams answers with HTTP/2)", ErrNotAcknowledged, c.id, got[:], ack)
	}
	if err := c.stream.SetDeadline(time.Time{}); err != nil {
		return fmt.Errorf("sidechannel: clear handshake deadline: %w", err)
	}
	// The call may have ended, and its deadline been set, just before.
	return c.ctx.Err()
}

// ID is the sidechannel's ID.
func (c *ServerConn) ID() int64 { return c.id }

// Read reads the client's body. It returns io.EOF after the flush packet,
// an error wrapping ErrInvalidPacket for broken framing and one wrapping
// io.ErrUnexpectedEOF for a body that ends without the flush packet.
func (c *ServerConn) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err != nil && err != io.EOF { //nolint:errorlint // io.EOF is returned as it is
		err = c.explain("read body", err)
	}
	return n, err
}

// Write sends p to the client as it is.
func (c *ServerConn) Write(p []byte) (int, error) {
	n, err := c.stream.Write(p)
	if err != nil {
		return n, c.explain("write response", fmt.Errorf("sidechannel: write response: %w", err))
	}
	return n, nil
}

// explain replaces err with why the sidechannel was cut off, when it was:
// the call ended, or Close.
func (c *ServerConn) explain(op string, err error) error {
	switch {
	case c.ctx.Err() != nil:
		return fmt.Errorf("sidechannel: %s: the call ended: %w", op, context.Cause(c.ctx))
	case c.closed.Load():
		return fmt.Errorf("sidechannel: %s: %w", op, net.ErrClosed)
	}
	return err
}

// Close ends the response: the client reads io.EOF after what was
// written. A Read or Write blocked on the sidechannel fails with
// net.ErrClosed.
func (c *ServerConn) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		c.stop()
		// yamux's close ends only writing: reads wait for the client's
		// own close. Wake them.
		c.stream.SetReadDeadline(time.Now())
		c.closeErr = c.stream.Close()
	})
	return c.closeErr
}
