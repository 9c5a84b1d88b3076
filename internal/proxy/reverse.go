package proxy

import (
	"context"
	"errors"
	"net"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/bcctl/bcctl/backchannel"
)

// reverseServer is the backchannel.Server of one multiplexed upstream
// connection: the streams the upstream opens on that connection are served
// by the proxy's shared reverse-relay gRPC server, each tagged with the
// link it belongs to, so a reverse call is relayed to that link's client
// and no other.
type reverseServer struct {
	p *Proxy
	l *link

	// mu guards lis and stopped.
	mu      sync.Mutex
	lis     net.Listener
	stopped bool
}

var _ backchannel.Server = (*reverseServer)(nil)

// Serve serves the upstream's streams on lis (the yamux session) until
// Stop, or until the session ends.
func (s *reverseServer) Serve(lis net.Listener) error {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		lis.Close()
		return nil
	}
	s.lis = lis
	s.mu.Unlock()
	err := s.p.reverse.Serve(&linkListener{Listener: lis, l: s.l})
	if errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

// Stop closes the session's listener; the session's streams close with
// the session, which the backchannel closes right after.
func (s *reverseServer) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	if s.lis != nil {
		s.lis.Close()
	}
}

// linkListener hands out the upstream's streams tagged with their link.
type linkListener struct {
	net.Listener
	l *link
}

func (ll *linkListener) Accept() (net.Conn, error) {
	conn, err := ll.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &taggedConn{Conn: conn, l: ll.l}, nil
}

// taggedConn is a stream the upstream opened, with the link it belongs to.
type taggedConn struct {
	net.Conn
	l *link
}

// reverseCreds are the credentials of the shared reverse-relay server. The
// streams travel inside the upstream connection, which is secured already:
// they run no handshake of their own, and only attach the stream's link.
type reverseCreds struct{}

// errUntagged means a connection reached the reverse server without
// coming through a linkListener: a bug.
var errUntagged = errors.New("proxy: reverse relay: connection without a link")

func (reverseCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	tc, ok := raw.(*taggedConn)
	if !ok {
		return nil, nil, errUntagged
	}
	return tc, linkInfo{AuthInfo: reverseAuthInfo{}, l: tc.l}, nil
}

func (reverseCreds) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("proxy: reverse relay credentials cannot dial")
}

func (reverseCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "backchannel"}
}

func (c reverseCreds) Clone() credentials.TransportCredentials { return c }

func (reverseCreds) OverrideServerName(string) error { return nil }

// reverseAuthInfo is the AuthInfo of a stream the upstream opened.
type reverseAuthInfo struct{}

func (reverseAuthInfo) AuthType() string { return "backchannel" }
