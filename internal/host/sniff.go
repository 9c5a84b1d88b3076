package host

import (
	"context"
	"net"
	"sync"

	"google.golang.org/grpc/credentials"
)

// sniffLen is how many of the server's first bytes are kept to tell what
// kind of server answered.
const sniffLen = 32

// diagnosis records what happened while connecting, so that a failed
// connection is reported with its real cause instead of gRPC's generic
// UNAVAILABLE. The connection's layers write it as they go; explain reads a
// snapshot of it.
type diagnosis struct {
	mu    sync.Mutex
	facts facts
}

// facts is what a connection attempt saw.
type facts struct {
	dialErr       error
	dialed        bool  // the TCP (or unix) connection was made
	handshakeErr  error // of the wrapped credentials (TLS)
	handshook     bool
	authInfo      credentials.AuthInfo
	certRequested bool  // the server asked for a client certificate, and there was none to give
	muxErr        error // of the multiplexing handshake
	first         []byte
	readErr       error // how reading from the server first failed
	writeErr      error // how writing to the server first failed
	// closed is set when this side closed the connection before it was
	// ready: gRPC gave up (its connect deadline), or the multiplexing layer
	// ended after an error. Read and write errors after it are its
	// consequence, not the server's doing, and are not recorded.
	closed bool
}

func (d *diagnosis) snapshot() facts {
	d.mu.Lock()
	defer d.mu.Unlock()
	f := d.facts
	f.first = append([]byte(nil), f.first...)
	return f
}

func (d *diagnosis) setDialed(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.facts.dialErr = err
	d.facts.dialed = err == nil
}

func (d *diagnosis) setHandshake(err error, ai credentials.AuthInfo) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		d.facts.handshakeErr = err
		return
	}
	d.facts.handshakeErr = nil
	d.facts.handshook = true
	d.facts.authInfo = ai
}

func (d *diagnosis) setMuxErr(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.facts.muxErr = err
}

func (d *diagnosis) setCertRequested() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.facts.certRequested = true
}

// sniffed records bytes read from the server and how reading failed; it
// reports whether it has seen enough.
func (d *diagnosis) sniffed(p []byte, err error) (enough bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f := &d.facts
	if n := sniffLen - len(f.first); n > 0 && len(p) > 0 {
		f.first = append(f.first, p[:min(n, len(p))]...)
	}
	if err != nil && f.readErr == nil && !f.closed {
		f.readErr = err
	}
	return len(f.first) >= sniffLen
}

func (d *diagnosis) wrote(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if f := &d.facts; f.writeErr == nil && !f.closed {
		f.writeErr = err
	}
}

func (d *diagnosis) setClosed() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.facts.closed = true
}

// sniffCreds wraps the transport credentials under the multiplexing
// handshake: it records how the handshake went and what the server sends
// first.
type sniffCreds struct {
	credentials.TransportCredentials
	d *diagnosis
}

func (s *sniffCreds) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, ai, err := s.TransportCredentials.ClientHandshake(ctx, authority, raw)
	s.d.setHandshake(err, ai)
	if err != nil {
		return nil, nil, err
	}
	return &sniffConn{Conn: conn, d: s.d}, ai, nil
}

func (s *sniffCreds) Clone() credentials.TransportCredentials {
	return &sniffCreds{TransportCredentials: s.TransportCredentials.Clone(), d: s.d}
}

// sniffConn records the first bytes read and the first read error until it
// has seen enough, the first write error, and a close by this side.
type sniffConn struct {
	net.Conn
	d    *diagnosis
	done bool // only the reading goroutine uses it
}

func (c *sniffConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if !c.done {
		c.done = c.d.sniffed(p[:n], err)
	}
	return n, err
}

func (c *sniffConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err != nil {
		c.d.wrote(err)
	}
	return n, err
}

func (c *sniffConn) Close() error {
	c.d.setClosed()
	return c.Conn.Close()
}
