package backchannel

import (
	"net"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/yamux"
)

// closeFuncConn is a net.Conn whose Close runs a cleanup once. gRPC may
// close a connection twice, concurrently; every caller gets the first
// Close's result.
type closeFuncConn struct {
	net.Conn
	closeOnce sync.Once
	closeErr  error
	cleanup   func() error
}

func (c *closeFuncConn) Close() error {
	c.closeOnce.Do(func() { c.closeErr = c.cleanup() })
	return c.closeErr
}

// sessionCloser closes a connection when its yamux session ends. gRPC
// closes the connection it was handed on most paths, but not on all of them
// (a transport that fails while it starts closes only the raw connection),
// and a session also ends when the peer disappears or sends garbage; either
// way what belongs to the connection must go. The raw connection under the
// session reports the end (yamux always closes it) through onClosed.
type sessionCloser struct {
	target atomic.Pointer[closeFuncConn]
}

// onClosed is the raw connection's onClose hook.
func (s *sessionCloser) onClosed() {
	if c := s.target.Load(); c != nil {
		c.Close()
	}
}

// set makes the session's end close conn, also when it has already ended.
func (s *sessionCloser) set(session *yamux.Session, conn *closeFuncConn) {
	s.target.Store(conn)
	if session.IsClosed() {
		go conn.Close()
	}
}
