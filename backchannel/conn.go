package backchannel

import (
	"net"
	"sync"

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

// closeWithSession closes conn when session ends. gRPC closes the connection
// it was handed on most paths, but not on all of them (a transport that fails
// while it starts closes only the raw connection), and a session also ends
// when the peer disappears or sends garbage; either way what belongs to the
// connection must go.
func closeWithSession(session *yamux.Session, conn net.Conn) {
	go func() {
		<-session.CloseChan()
		conn.Close()
	}()
}
