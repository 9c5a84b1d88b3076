package serve

import (
	"fmt"
	"net"
	"sync"

	"google.golang.org/grpc/credentials"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/listenmux"
)

// http2Head is what a plain gRPC (HTTP/2) client sends first: the start of
// the connection preface.
const http2Head = "PRI * HTTP/"

// reportingCreds wraps the listenmux so that every connection that fails
// its handshake is reported with its address and why.
type reportingCreds struct {
	credentials.TransportCredentials
	s *Server
}

// newReportingCreds makes mux refuse, at once and with a clear reason, a
// connection that is neither HTTP/2 nor the backchannel handshake (instead
// of deep inside HTTP/2), and reports every refused connection to s.
func newReportingCreds(mux *listenmux.Mux, s *Server) *reportingCreds {
	mux.SetFallback(requireHTTP2)
	return &reportingCreds{TransportCredentials: mux, s: s}
}

// requireHTTP2 is the listenmux Fallback: a connection that matched no
// handshaker must be a plain gRPC client.
func requireHTTP2(conn net.Conn, head []byte, info credentials.AuthInfo) (net.Conn, credentials.AuthInfo, error) {
	if string(head) != http2Head {
		return nil, nil, fmt.Errorf("the connection is neither gRPC (HTTP/2) nor the backchannel handshake: it began with %q", head)
	}
	return conn, info, nil
}

func (c *reportingCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := c.TransportCredentials.ServerHandshake(raw)
	if err != nil {
		return nil, nil, c.reject(raw, err)
	}
	if _, multiplexed := info.(backchannel.AuthInfo); !multiplexed {
		c.s.Hub.PlainClientJoined()
		conn = &plainConn{Conn: conn, hub: c.s.Hub}
	}
	return conn, info, nil
}

// plainConn is the connection of a plain gRPC client, which the hub
// counts until it closes.
type plainConn struct {
	net.Conn
	hub  *Hub
	once sync.Once
}

func (c *plainConn) Close() error {
	c.once.Do(c.hub.PlainClientLeft)
	return c.Conn.Close()
}

func (c *reportingCreds) reject(raw net.Conn, err error) error {
	c.s.rejected.Add(1)
	c.s.log.Warn("serve: connection rejected", "remote", addrString(raw.RemoteAddr()), "err", err)
	return fmt.Errorf("serve: connection from %s rejected: %w", addrString(raw.RemoteAddr()), err)
}

func (c *reportingCreds) Clone() credentials.TransportCredentials {
	return &reportingCreds{TransportCredentials: c.TransportCredentials.Clone(), s: c.s}
}
