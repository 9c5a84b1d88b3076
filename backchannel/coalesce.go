package backchannel

import (
	"encoding/binary"
	"net"
	"sync"
)

// yamux frame header layout (version, type, flags, stream ID, length).
const (
	yamuxHeaderLen = 12
	yamuxTypeData  = 0
	// coalesceLimit is the largest body copied behind its header for
	// connections that cannot write two buffers in one call (TLS). Larger
	// bodies amortize a separate header write.
	coalesceLimit = 64 << 10
)

// coalescingConn is the connection under a yamux session. yamux writes each
// data frame as two writes, its 12-byte header and then its body; every
// write is a system call (and with TLS a record of its own). coalescingConn
// holds a data frame's header back and sends it with the body in one write.
//
// yamux writes only from its send loop, one write at a time, and a data
// header announcing a body is always followed by that body, so at most one
// header is ever held and it is never held across an idle connection.
type coalescingConn struct {
	net.Conn

	header [yamuxHeaderLen]byte
	held   bool
	writev bool // the connection writes net.Buffers in one system call

	// onClose, when set, runs once in its own goroutine when the
	// connection is closed. yamux closes it whenever its session ends, for
	// whatever reason, which makes this the place to learn of the end
	// without a goroutine per connection waiting for it.
	onClose   func()
	closeOnce sync.Once
}

// scratchPool holds the buffers that join a header and its body for
// connections without writev. Pooled, so that idle connections hold none.
var scratchPool = sync.Pool{New: func() any {
	b := make([]byte, 0, yamuxHeaderLen+coalesceLimit)
	return &b
}}

// newCoalescingConn wraps conn; onClose may be nil.
func newCoalescingConn(conn net.Conn, onClose func()) *coalescingConn {
	var writev bool
	switch conn.(type) {
	case *net.TCPConn, *net.UnixConn:
		writev = true
	}
	return &coalescingConn{Conn: conn, writev: writev, onClose: onClose}
}

func (c *coalescingConn) Write(p []byte) (int, error) {
	if c.held {
		c.held = false
		return c.writeFrame(p)
	}
	if len(p) == yamuxHeaderLen && p[1] == yamuxTypeData && binary.BigEndian.Uint32(p[8:12]) > 0 {
		copy(c.header[:], p)
		c.held = true
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// writeFrame writes the held header followed by body.
func (c *coalescingConn) writeFrame(body []byte) (int, error) {
	switch {
	case c.writev:
		bufs := net.Buffers{c.header[:], body}
		n, err := bufs.WriteTo(c.Conn)
		return max(int(n)-yamuxHeaderLen, 0), err
	case len(body) <= coalesceLimit:
		buf := scratchPool.Get().(*[]byte)
		*buf = append(append((*buf)[:0], c.header[:]...), body...)
		n, err := c.Conn.Write(*buf)
		scratchPool.Put(buf)
		return max(n-yamuxHeaderLen, 0), err
	default:
		if _, err := c.Conn.Write(c.header[:]); err != nil {
			return 0, err
		}
		return c.Conn.Write(body)
	}
}

// Close closes the connection and starts onClose.
func (c *coalescingConn) Close() error {
	c.closeOnce.Do(func() {
		if c.onClose != nil {
			go c.onClose()
		}
	})
	return c.Conn.Close()
}
