package backchannel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"

	"github.com/hashicorp/yamux"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// ServerHandshaker performs the server side of the multiplexing handshake.
// Register it with a listenmux.Mux.
type ServerHandshaker struct {
	logger    *slog.Logger
	registry  *Registry
	dialOpts  []grpc.DialOption
	cfg       Configuration
	unguarded bool // no ping guard: only for benchmarks that measure it
}

// ServerHandshakerOption configures a ServerHandshaker.
type ServerHandshakerOption func(*ServerHandshaker)

// WithServerConfiguration sets the yamux settings of the server side. The
// default is DefaultServerConfiguration(), which also gives the zero fields
// of cfg their values.
func WithServerConfiguration(cfg Configuration) ServerHandshakerOption {
	return func(s *ServerHandshaker) { s.cfg = cfg.withDefaults(DefaultServerConfiguration()) }
}

// NewServerHandshaker returns a ServerHandshaker that registers the
// backchannel of every multiplexed peer in reg. dialOpts configure the
// dial-back connections; they must not set a dialer or transport
// credentials, which the handshaker provides. logger (nil discards) receives
// multiplexing errors.
func NewServerHandshaker(logger *slog.Logger, reg *Registry, dialOpts []grpc.DialOption, opts ...ServerHandshakerOption) *ServerHandshaker {
	s := &ServerHandshaker{
		logger:   orDiscard(logger),
		registry: reg,
		dialOpts: dialOpts,
		cfg:      DefaultServerConfiguration(),
	}
	for _, opt := range opts {
		opt(s)
	}
	return s
}

// Magic returns the bytes that select this handshaker in a listenmux.Mux.
func (s *ServerHandshaker) Magic() string { return magicBytes }

// Handshake starts the yamux server session on conn and accepts the
// client's forward stream. The peer joins the registry when its forward
// gRPC transport starts, once its HTTP/2 preface has arrived: a client that
// opens a stream and says nothing more is never listed. Its backchannel
// connection is created on the first Registry.Backchannel call and
// connects on the first reverse call, so an idle peer costs neither.
// The returned AuthInfo is an AuthInfo carrying the peer's ID. The returned
// connection's Close removes the peer from the registry and closes the
// dial-back, the session and conn.
//
// gRPC keeps a deadline on the raw connection while Handshake runs
// (grpc.ConnectionTimeout), which bounds how long a client that never opens
// its stream can hold the handshake.
func (s *ServerHandshaker) Handshake(conn net.Conn, authInfo credentials.AuthInfo) (net.Conn, credentials.AuthInfo, error) {
	if err := s.cfg.validate(); err != nil {
		return nil, nil, err
	}

	var ended sessionCloser
	session, err := yamux.Server(guardPings(newCoalescingConn(conn, ended.onClosed), s.logger, s.unguarded), s.cfg.yamuxConfig(s.logger))
	if err != nil {
		return nil, nil, fmt.Errorf("backchannel: start yamux server: %w", err)
	}

	stream, err := session.Accept()
	if err != nil {
		session.Close()
		return nil, nil, fmt.Errorf("backchannel: accept forward stream: %w", err)
	}

	remote := conn.RemoteAddr()
	backchannel := &lazyConn{create: func() (*grpc.ClientConn, error) {
		return s.dialBack(session, remote, authInfo)
	}}
	member := &membership{registry: s.registry, id: s.registry.reserve(), backchannel: backchannel, remote: remote}
	closer := &closeFuncConn{
		Conn: &prefaceConn{Conn: stream, started: member.join},
		cleanup: func() error {
			member.leave()
			return errors.Join(backchannel.close(), session.Close())
		},
	}
	ended.set(session, closer)
	return closer, AuthInfo{Wrapped: authInfo, ID: member.id, session: session}, nil
}

// dialBack returns a ClientConn to the client's backchannel server whose
// transports are new streams of session. It connects on the first call.
func (s *ServerHandshaker) dialBack(session *yamux.Session, remote net.Addr, authInfo credentials.AuthInfo) (*grpc.ClientConn, error) {
	target := "passthrough:///multiplexed/" + url.PathEscape(addrString(remote))
	// The transport reads from a yamux stream, whose Read copies from
	// memory: gRPC's 32 KiB read buffer would only add a copy and hold
	// memory for every peer. Callers' options come after and win.
	opts := append([]grpc.DialOption{grpc.WithReadBufferSize(0)}, s.dialOpts...)
	opts = append(opts,
		grpc.WithTransportCredentials(dialBackCredentials{wrapped: authInfo}),
		grpc.WithContextDialer(func(context.Context, string) (net.Conn, error) {
			return session.Open()
		}),
	)
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		return nil, fmt.Errorf("backchannel: create dial-back connection: %w", err)
	}
	return conn, nil
}

func addrString(a net.Addr) string {
	if a == nil {
		return "unknown"
	}
	return a.String()
}

// dialBackCredentials run no handshake of their own (the stream travels
// inside the already secured connection) but report the security of the
// wrapped connection, so per-RPC credentials that require transport
// security work on reverse calls.
type dialBackCredentials struct {
	wrapped credentials.AuthInfo
}

func (c dialBackCredentials) ClientHandshake(_ context.Context, _ string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return conn, AuthInfo{Wrapped: c.wrapped}, nil
}

func (c dialBackCredentials) ServerHandshake(net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("backchannel: dial-back credentials cannot perform a server handshake")
}

func (c dialBackCredentials) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "backchannel"}
}

func (c dialBackCredentials) Clone() credentials.TransportCredentials { return c }

func (c dialBackCredentials) OverrideServerName(string) error { return nil }
