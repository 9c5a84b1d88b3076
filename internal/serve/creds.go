package serve

import (
	"fmt"
	"io"
	"net"

	"google.golang.org/grpc/credentials"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/listenmux"
)

// http2Head is what a plain gRPC (HTTP/2) client sends first: the start of
// the connection preface.
const http2Head = "PRI * HTTP/"

// reportingCreds wraps the listenmux so that every connection that fails
// its handshake is reported with its address and why, and so that a
// connection that is neither HTTP/2 nor the backchannel handshake is
// refused at once with a clear reason instead of deep inside HTTP/2.
type reportingCreds struct {
	credentials.TransportCredentials
	s *Server
}

func (c *reportingCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := c.TransportCredentials.ServerHandshake(raw)
	if err != nil {
		return nil, nil, c.reject(raw, err)
	}
	if _, ok := info.(backchannel.AuthInfo); ok {
		return conn, info, nil
	}
	// The mux replays the bytes it read; read them again to see what they are.
	var head [listenmux.MagicLen]byte
	if _, err := io.ReadFull(conn, head[:]); err != nil {
		conn.Close()
		return nil, nil, c.reject(raw, fmt.Errorf("read the first bytes: %w", err))
	}
	if string(head[:]) != http2Head {
		conn.Close()
		return nil, nil, c.reject(raw, fmt.Errorf("the connection is neither gRPC (HTTP/2) nor the backchannel handshake: it began with %q", head[:]))
	}
	return &replayConn{Conn: conn, head: head[:]}, info, nil
}

func (c *reportingCreds) reject(raw net.Conn, err error) error {
	c.s.rejected.Add(1)
	c.s.log.Warn("serve: connection rejected", "remote", addrString(raw.RemoteAddr()), "err", err)
	return fmt.Errorf("serve: connection from %s rejected: %w", addrString(raw.RemoteAddr()), err)
}

func (c *reportingCreds) Clone() credentials.TransportCredentials {
	return &reportingCreds{TransportCredentials: c.TransportCredentials.Clone(), s: c.s}
}

// replayConn returns head before the rest of the connection.
type replayConn struct {
	net.Conn
	head []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.head) > 0 {
		n := copy(p, c.head)
		c.head = c.head[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}
