package listenmux

import (
	"context"
	"errors"
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
	//
	// A Handshaker that takes the connection out of gRPC for good returns
	// credentials.ErrConnDispatched: the Mux then hands that error on
	// unwrapped and leaves the connection open, and gRPC forgets it. The
	// connection is the handshaker's from then on, and so is closing it.
	// gRPC clears the raw connection's deadline after Handshake returns,
	// so work that needs a deadline belongs inside Handshake.
	Handshake(conn net.Conn, authInfo credentials.AuthInfo) (net.Conn, credentials.AuthInfo, error)
	// Magic returns the MagicLen bytes that select this handshaker.
	Magic() string
}

// Fallback decides what becomes of a connection whose first MagicLen bytes
// match no registered Handshaker. conn replays those bytes, which are also
// passed as magic, in front of the rest of the stream, so returning it
// unchanged serves the connection as plain gRPC. An error refuses the
// connection: the Mux closes it and returns the error wrapped, except
// credentials.ErrConnDispatched, which works as it does for a Handshaker.
// magic must not be modified or kept.
type Fallback func(conn net.Conn, magic []byte, authInfo credentials.AuthInfo) (net.Conn, credentials.AuthInfo, error)

// ServeAsGRPC is the Fallback a Mux uses until SetFallback is called, and
// Gitaly's behaviour: the connection, magic replayed, is served as gRPC.
func ServeAsGRPC(conn net.Conn, _ []byte, authInfo credentials.AuthInfo) (net.Conn, credentials.AuthInfo, error) {
	return conn, authInfo, nil
}

// Mux is a credentials.TransportCredentials that routes each server-side
// connection to the Handshaker whose magic the client sends first, or to its
// Fallback, which serves it as plain gRPC unless set otherwise. Client
// handshakes are those of the wrapped credentials.
//
// Register every Handshaker, and set the Fallback, before the Mux is handed
// to grpc.Creds.
type Mux struct {
	credentials.TransportCredentials

	// mu guards handshakers and fallback.
	mu          sync.RWMutex
	handshakers map[string]Handshaker
	fallback    Fallback
}

// New returns a Mux that runs tc's handshake before reading the magic.
func New(tc credentials.TransportCredentials) *Mux {
	return &Mux{
		TransportCredentials: tc,
		handshakers:          make(map[string]Handshaker),
		fallback:             ServeAsGRPC,
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

// SetFallback makes f decide about connections that match no Handshaker;
// nil restores ServeAsGRPC. A server that wants to refuse anything but the
// HTTP/2 preface and its magics with a clear error, without reading the
// connection a second time, does it here.
func (m *Mux) SetFallback(f Fallback) {
	if f == nil {
		f = ServeAsGRPC
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fallback = f
}

// ServerHandshake runs the wrapped handshake, reads the magic and hands the
// connection to the matching Handshaker, or to the Fallback with the magic
// bytes replayed in front of it.
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
	fallback := m.fallback
	m.mu.RUnlock()

	var (
		hconn net.Conn
		hauth credentials.AuthInfo
	)
	if ok {
		hconn, hauth, err = h.Handshake(conn, authInfo)
	} else {
		hconn, hauth, err = fallback(&replayConn{Conn: conn, pending: magic}, magic, authInfo)
	}
	switch {
	case errors.Is(err, credentials.ErrConnDispatched):
		// gRPC leaves the connection open only for the sentinel itself.
		return nil, nil, credentials.ErrConnDispatched
	case err != nil && ok:
		conn.Close()
		return nil, nil, fmt.Errorf("listenmux: %q handshake: %w", magic, err)
	case err != nil:
		conn.Close()
		return nil, nil, fmt.Errorf("listenmux: fallback for %q: %w", magic, err)
	}
	return hconn, hauth, nil
}

// ClientHandshake runs the wrapped credentials' client handshake.
func (m *Mux) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return m.TransportCredentials.ClientHandshake(ctx, authority, conn)
}

// Clone returns a copy of the Mux with a clone of the wrapped credentials,
// the same handshakers and the same Fallback.
func (m *Mux) Clone() credentials.TransportCredentials {
	m.mu.RLock()
	defer m.mu.RUnlock()

	clone := New(m.TransportCredentials.Clone())
	for magic, h := range m.handshakers {
		clone.handshakers[magic] = h
	}
	clone.fallback = m.fallback
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
