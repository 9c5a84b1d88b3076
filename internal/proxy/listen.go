package proxy

import (
	"context"
	"fmt"
	"net"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/listenmux"
)

// listenCreds are the credentials of the listening server: the listenmux
// (TLS or plaintext, then the backchannel handshake or plain gRPC) with a
// link opened for every connection that completes it. The link travels in
// the connection's AuthInfo, so every call finds its own link.
type listenCreds struct {
	*listenmux.Mux
	p *Proxy
}

func (c *listenCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	l := c.p.newLink(raw.RemoteAddr())
	conn, info, err := c.Mux.ServerHandshake(&clientRawConn{Conn: raw, l: l})
	if err != nil {
		c.p.log.Warn("proxy: client connection rejected", "remote", addrString(raw.RemoteAddr()), "err", err)
		return nil, nil, fmt.Errorf("proxy: connection from %s rejected: %w", addrString(raw.RemoteAddr()), err)
	}
	if err := c.p.openLink(l, info); err != nil {
		conn.Close()
		return nil, nil, err
	}
	return &clientConn{Conn: conn, l: l}, linkInfo{AuthInfo: info, l: l}, nil
}

func (c *listenCreds) Clone() credentials.TransportCredentials {
	return &listenCreds{Mux: c.Mux.Clone().(*listenmux.Mux), p: c.p}
}

// clientRawConn is a client's network connection. It tells the link when
// the client goes away: reading it fails first, before the calls on the
// connection (forward calls, and the reverse calls on a multiplexed
// client's backchannel) fail, so those calls are put down to the client.
type clientRawConn struct {
	net.Conn
	l *link
}

func (c *clientRawConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil {
		c.l.lost(SideClient)
	}
	return n, err
}

// clientConn is a client's connection as the listening server serves it;
// it closes the link when gRPC closes it.
type clientConn struct {
	net.Conn
	l *link
}

// Close closes the connection and the link. gRPC closes the connection
// before it cancels the calls that were on it, so the link learns here
// that the client is gone (unless the proxy is stopping) before any call
// can put its end down to the upstream.
func (c *clientConn) Close() error {
	if !c.l.p.stopping.Load() {
		c.l.lost(SideClient)
	}
	err := c.Conn.Close()
	c.l.close()
	return err
}

// linkInfo is the AuthInfo of a connection that belongs to a link: the
// AuthInfo of the handshakes it went through, and the link.
type linkInfo struct {
	credentials.AuthInfo
	l *link
}

// Unwrap returns the AuthInfo of the handshakes (backchannel.AuthInfo for
// a multiplexed client, credentials.TLSInfo for a TLS one).
func (i linkInfo) Unwrap() credentials.AuthInfo { return i.AuthInfo }

// linkOf returns the link of the connection a call arrived on.
func linkOf(ctx context.Context) (*link, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil, false
	}
	info, ok := p.AuthInfo.(linkInfo)
	return info.l, ok
}

// peerID returns the backchannel ID of a multiplexed connection's AuthInfo.
func peerID(info credentials.AuthInfo) (backchannel.ID, bool) {
	bi, ok := info.(backchannel.AuthInfo)
	return bi.ID, ok
}

func addrString(a net.Addr) string {
	if a == nil {
		return "unknown"
	}
	return a.String()
}

// requireHTTP2 is the listener's listenmux Fallback: a connection that did
// not do the backchannel handshake must be a plain gRPC client. Anything
// else is refused at once, with what it began with, before the proxy
// connects upstream for it.
func requireHTTP2(conn net.Conn, head []byte, info credentials.AuthInfo) (net.Conn, credentials.AuthInfo, error) {
	if string(head) != http2Head {
		return nil, nil, fmt.Errorf("the connection is neither gRPC (HTTP/2) nor the backchannel handshake: it began with %q", head)
	}
	return conn, info, nil
}
