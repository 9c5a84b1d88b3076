package backchannel

import (
	"net"
	"sync"
)

// http2Preface is what every HTTP/2 client, gRPC's included, sends first
// on its connection.
const http2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// prefaceConn is a multiplexed peer's forward stream on the server. It
// calls started once the HTTP/2 preface has been read from it in full, which
// is when gRPC's transport for the peer starts. A peer that sends something
// else never starts; gRPC drops it.
//
// gRPC reads a connection from one goroutine at a time (the handshake, then
// the transport's reader, which the handshake starts), so the fields need
// no lock.
type prefaceConn struct {
	net.Conn
	seen    int  // bytes of the preface read so far
	decided bool // the preface has been read, or something else was
	started func()
}

func (c *prefaceConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if !c.decided && n > 0 {
		c.watch(p[:n])
	}
	return n, err
}

// watch compares b, the next bytes read, with the rest of the preface.
func (c *prefaceConn) watch(b []byte) {
	k := min(len(b), len(http2Preface)-c.seen)
	if string(b[:k]) != http2Preface[c.seen:c.seen+k] {
		c.decided = true
		return
	}
	c.seen += k
	if c.seen == len(http2Preface) {
		c.decided = true
		c.started()
	}
}

// membership puts a multiplexed peer in the registry when its forward
// transport starts and takes it out when its connection ends, each at most
// once and in that order: a peer that leaves before it started never joins
// (and its leaving is not announced).
type membership struct {
	registry    *Registry
	id          ID
	backchannel *lazyConn
	remote      net.Addr

	mu     sync.Mutex
	joined bool // guarded by mu
	gone   bool // guarded by mu
}

// join adds the peer to the registry unless it has already left.
func (m *membership) join() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.joined || m.gone {
		return
	}
	m.joined = true
	m.registry.add(m.id, m.backchannel, m.remote)
}

// leave removes the peer from the registry if it joined, and keeps it from
// joining later.
func (m *membership) leave() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.joined && !m.gone {
		m.registry.RemoveBackchannel(m.id)
	}
	m.gone = true
}
