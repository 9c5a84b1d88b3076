package listenmux

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"

	"google.golang.org/grpc/credentials"
)

// MagicLen is the number of bytes a Mux reads after the wrapped handshake to
// choose a Handshaker. Every registered magic has exactly this length.
const MagicLen = 11

// Handshaker takes over connections that start with its magic bytes.
type Handshaker interface {
	// Handshake is called with the connection after the wrapped
	// credentials' handshake and after the magic bytes have been read. It
	// returns the connection and AuthInfo that gRPC serves. It runs within
	// gRPC's connection timeout: the raw connection has a deadline until
	// Handshake returns.
	Handshake(conn net.Conn, authInfo credentials.AuthInfo) (net.Conn, credentials.AuthInfo, error)
	// Magic returns the MagicLen bytes that select this handshaker.
	Magic() string
}

// Mux is a credentials.TransportCredentials that routes each server-side
// connection to the Handshaker whose magic the client sends first, or serves
// it as plain gRPC. Client handshakes are those of the wrapped credentials.
//
// Register every Handshaker before the Mux is handed to grpc.Creds.
type Mux struct {
	credentials.TransportCredentials

	mu          sync.RWMutex
	handshakers map[string]Handshaker
}

// New returns a Mux that runs tc's handshake before reading the magic.
func New(tc credentials.TransportCredentials) *Mux {
	return &Mux{
		TransportCredentials: tc,
		handshakers:          make(map[string]Handshaker),
	}
}

// Register adds h for connections that start with h.Magic(). It panics when
// the magic is not exactly MagicLen bytes or is already registered: both are
// programming errors that would otherwise route connections silently wrong.
func (m *Mux) Register(h Handshaker) {
	magic := h.Magic()
	if len(magic) != MagicLen {
		panic(fmt.Sprintf("listenmux: register %T: magic %q is %d bytes; it must be exactly %d", h, magic, len(magic), MagicLen))
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.handshakers[magic]; ok {
		panic(fmt.Sprintf("listenmux: register %T: magic %q is already registered", h, magic))
	}
	m.handshakers[magic] = h
}

// ServerHandshake runs the wrapped handshake, reads the magic and hands the
// connection to the matching Handshaker. Without a match the connection is
// returned with the magic bytes replayed in front of it.
func (m *Mux) ServerHandshake(rawConn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, authInfo, err := m.TransportCredentials.ServerHandshake(rawConn)
	if err != nil {
		return nil, nil, err
	}

	magic := make([]byte, MagicLen)
	if _, err := io.ReadFull(conn, magic); err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("listenmux: read magic: %w", err)
	}

	m.mu.RLock()
	h, ok := m.handshakers[string(magic)]
	m.mu.RUnlock()
	if !ok {
		return &replayConn{Conn: conn, pending: magic}, authInfo, nil
	}

	hconn, hauth, err := h.Handshake(conn, authInfo)
	if err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("listenmux: %q handshake: %w", magic, err)
	}
	return hconn, hauth, nil
}

// ClientHandshake runs the wrapped credentials' client handshake.
func (m *Mux) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return m.TransportCredentials.ClientHandshake(ctx, authority, conn)
}

// Clone returns a copy of the Mux with a clone of the wrapped credentials
// and the same handshakers.
func (m *Mux) Clone() credentials.TransportCredentials {
	m.mu.RLock()
	defer m.mu.RUnlock()

	clone := New(m.TransportCredentials.Clone())
	for magic, h := range m.handshakers {
		clone.handshakers[magic] = h
	}
	return clone
}

// replayConn returns the already read magic bytes before reading on.
type replayConn struct {
	net.Conn
	pending []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}
