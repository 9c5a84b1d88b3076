package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"

	"google.golang.org/grpc/credentials"
)

// sniffLen is how many of the server's first bytes are kept to tell what
// kind of server answered.
const sniffLen = 16

// diagnosis records what happened while connecting, so that a failed
// connection is reported with its real cause instead of gRPC's generic
// UNAVAILABLE.
type diagnosis struct {
	mu           sync.Mutex
	dialErr      error
	handshakeErr error // of the wrapped credentials (TLS)
	muxErr       error // of the multiplexing handshake
	handshook    bool
	authInfo     credentials.AuthInfo
	first        []byte // the first bytes the server sent after the transport handshake
	readErr      error  // how reading from the server first failed
	writeErr     error  // how writing to the server first failed
}

func (d *diagnosis) setDialErr(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dialErr = err
}

func (d *diagnosis) setHandshake(err error, ai credentials.AuthInfo) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		d.handshakeErr = err
		return
	}
	d.handshakeErr = nil
	d.handshook = true
	d.authInfo = ai
}

func (d *diagnosis) sniffed(p []byte, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if n := sniffLen - len(d.first); n > 0 && len(p) > 0 {
		d.first = append(d.first, p[:min(n, len(p))]...)
	}
	if err != nil && d.readErr == nil {
		d.readErr = err
	}
}

// explain returns the error that best describes why the connection to addr
// did not become ready; nil when nothing was recorded.
func (d *diagnosis) explain(addr string, multiplexed, plaintext bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.dialErr != nil:
		return fmt.Errorf("%w %s: %w", ErrConnect, addr, unwrapOpError(d.dialErr))
	case d.handshakeErr != nil:
		return fmt.Errorf("%w %s: handshake: %w%s", ErrConnect, addr, d.handshakeErr, tlsHint(d.handshakeErr))
	case !d.handshook:
		return nil
	case looksLikeTLSAlert(d.first):
		return fmt.Errorf("%w %s: the server speaks TLS (it answered with a TLS alert); drop --plaintext", ErrConnect, addr)
	case multiplexed && looksLikeHTTP2Settings(d.first):
		return fmt.Errorf("%w: %s answered the multiplexing handshake as a plain HTTP/2 gRPC server", ErrNotMultiplexing, addr)
	case multiplexed && len(d.first) == 0 && (isReset(d.readErr) || isReset(d.writeErr)):
		// A plain gRPC server sends its SETTINGS and closes when the
		// preface is wrong; when our frames were still unread, its close
		// is a reset, and the reset discards the SETTINGS before we read
		// them (or fails a write, which closes the connection before we
		// read). A multiplexing server never resets the handshake.
		return fmt.Errorf("%w: %s reset the connection after the multiplexing handshake, as a plain HTTP/2 gRPC server does", ErrNotMultiplexing, addr)
	case len(d.first) == 0 && d.readErr != nil && plaintext:
		return fmt.Errorf("%w %s: the server closed the connection without a word (a TLS server does that to plain text: drop --plaintext)", ErrConnect, addr)
	case len(d.first) == 0 && d.readErr != nil:
		return fmt.Errorf("%w %s: the server closed the connection without a word", ErrConnect, addr)
	case d.muxErr != nil:
		return fmt.Errorf("%w %s: multiplexing handshake: %w", ErrConnect, addr, d.muxErr)
	case d.readErr != nil:
		return fmt.Errorf("%w %s: the server closed the connection: %w", ErrConnect, addr, d.readErr)
	}
	return nil
}

// isReset reports whether err says the peer reset the connection.
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// unwrapOpError drops the "dial tcp" prefix layers that net adds, keeping
// the reason ("connect: connection refused").
func unwrapOpError(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}

func tlsHint(err error) string {
	msg := err.Error()
	switch {
	case bytes.Contains([]byte(msg), []byte("first record does not look like a TLS handshake")):
		return " (the server does not speak TLS: use --plaintext)"
	case bytes.Contains([]byte(msg), []byte("certificate signed by unknown authority")):
		return " (give the server's CA with --cacert, or skip verification with --insecure)"
	case bytes.Contains([]byte(msg), []byte("certificate is valid for")), bytes.Contains([]byte(msg), []byte("doesn't contain any IP SANs")):
		return " (name the server as its certificate does with --authority)"
	}
	return ""
}

// looksLikeHTTP2Settings reports whether p starts with an HTTP/2 SETTINGS
// frame on stream 0, which is what a plain gRPC server sends first. A
// multiplexing server answers with a yamux frame instead, whose stream ID
// is never 0 for the frame type and flags this would be read as.
func looksLikeHTTP2Settings(p []byte) bool {
	return len(p) >= 9 && p[3] == 0x04 && p[4]&^0x01 == 0 &&
		p[5]&0x7f == 0 && p[6] == 0 && p[7] == 0 && p[8] == 0
}

// looksLikeTLSAlert reports whether p starts with a TLS alert record.
func looksLikeTLSAlert(p []byte) bool {
	return len(p) >= 3 && p[0] == 0x15 && p[1] == 0x03
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

// sniffConn records the first bytes read, and the first read error, until
// it has seen enough.
type sniffConn struct {
	net.Conn
	d    *diagnosis
	done bool
}

func (c *sniffConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err != nil {
		c.d.mu.Lock()
		if c.d.writeErr == nil {
			c.d.writeErr = err
		}
		c.d.mu.Unlock()
	}
	return n, err
}

func (c *sniffConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if !c.done {
		c.d.sniffed(p[:n], err)
		c.d.mu.Lock()
		c.done = len(c.d.first) >= sniffLen
		c.d.mu.Unlock()
	}
	return n, err
}
