// Package testnet holds network helpers for tests: a listener whose
// connections can be cut at once, as a server that crashes cuts them —
// no goodbye, no stream reset, just closed sockets.
package testnet

import (
	"net"
	"sync"
)

// CrashListener is a net.Listener that keeps the connections it accepts.
type CrashListener struct {
	net.Listener

	mu    sync.Mutex // guards conns
	conns []net.Conn
}

// NewCrashListener wraps lis.
func NewCrashListener(lis net.Listener) *CrashListener { return &CrashListener{Listener: lis} }

// Accept accepts a connection and keeps it for Crash.
func (l *CrashListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.conns = append(l.conns, c)
		l.mu.Unlock()
	}
	return c, err
}

// Crash closes every connection accepted so far (the listener stays
// open).
func (l *CrashListener) Crash() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		_ = c.Close()
	}
}
