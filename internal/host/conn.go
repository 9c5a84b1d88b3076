package host

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/listenmux"
)

// DefaultConnectTimeout is Config.ConnectTimeout when it is zero (grpcurl's
// default).
const DefaultConnectTimeout = 10 * time.Second

// Config says how to reach a server.
type Config struct {
	// Network is "tcp" or "unix"; Address is host:port or a socket path.
	Network, Address string
	// Creds are the transport credentials (TLS, or insecure for plaintext).
	// Unless NoMux, the backchannel handshake runs after theirs. Give Creds
	// or TLS.
	Creds credentials.TransportCredentials
	// TLS is the TLS configuration to connect with, instead of Creds. With
	// it Dial can tell that a server wants a client certificate when the
	// configuration has none.
	TLS *tls.Config
	// Authority is the :authority of calls; "" means Address ("localhost"
	// for a unix socket).
	Authority string
	// NoMux connects as a plain gRPC client: no magic bytes, no
	// backchannel.
	NoMux bool
	// ConnectTimeout bounds connecting (TCP, TLS, the backchannel
	// handshake and the HTTP/2 preface); zero means DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// KeepaliveTime, when set, sends an HTTP/2 ping after that long without
	// activity and closes the connection when no answer comes within the
	// same time.
	KeepaliveTime time.Duration
	// MaxRecvMsgSize is the largest message accepted, forward responses and
	// reverse requests alike; zero means gRPC's default (4 MiB).
	MaxRecvMsgSize int
	// UserAgent is put in front of grpc-go's user agent.
	UserAgent string
	// Backchannel is the yamux configuration of the multiplexed session;
	// zero fields mean backchannel.DefaultConfiguration()'s, except the
	// accept backlog, DefaultAcceptBacklog.
	Backchannel backchannel.Configuration
	// StreamHandshakers take the streams the server opens that begin with
	// their magic (Gitaly's sidechannel) out of the backchannel server
	// (backchannel.WithStreamHandshaker).
	StreamHandshakers []listenmux.Handshaker
	// Limits bound what the server can make the hosted backchannel server
	// spend.
	Limits Limits
	// Logger receives the multiplexing layer's diagnostics; nil discards.
	Logger *slog.Logger
	// DialOptions are added to the forward connection's options.
	DialOptions []grpc.DialOption
}

// Conn is a connection to a server, with the backchannel server hosted on
// it when multiplexed.
type Conn struct {
	cc          *grpc.ClientConn
	cfg         Config
	base        credentials.TransportCredentials // cfg's, without the multiplexing handshake
	dialer      net.Dialer
	diag        *diagnosis
	bc          *backchannelServer
	connectTime time.Duration
	closeOnce   sync.Once
	closeErr    error
	lost        chan struct{}
	watchCtx    context.Context
	stopWatch   context.CancelFunc
}

// Dial connects to the server of cfg and waits until the connection is
// ready, at most cfg.ConnectTimeout. A connection refused, a TLS handshake
// that fails, or a server that closes the connection is reported at once,
// by what really happened (wrapping ErrConnect or ErrNotMultiplexing).
// Reverse calls are held until Host is called.
func Dial(ctx context.Context, cfg Config) (*Conn, error) {
	if cfg.Network == "" {
		cfg.Network = "tcp"
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	diag := &diagnosis{}
	base, err := cfg.credentials(diag)
	if err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Conn{
		cfg: cfg, base: base, dialer: net.Dialer{Timeout: cfg.ConnectTimeout}, diag: diag,
		bc:   newBackchannelServer(logger, cfg.MaxRecvMsgSize, cfg.Limits.withDefaults(cfg.ConnectTimeout)),
		lost: make(chan struct{}),
	}
	c.watchCtx, c.stopWatch = context.WithCancel(context.Background())

	var creds credentials.TransportCredentials = &sniffCreds{TransportCredentials: base, d: diag}
	if !cfg.NoMux {
		bcfg := cfg.Backchannel
		if bcfg.AcceptBacklog == 0 {
			bcfg.AcceptBacklog = DefaultAcceptBacklog
		}
		c.bc.limits.backlog = bcfg.AcceptBacklog
		var opts []backchannel.ClientHandshakerOption
		for _, h := range cfg.StreamHandshakers {
			opts = append(opts, backchannel.WithStreamHandshaker(h))
		}
		// A stream routed by its first bytes is held, and reported, as a
		// reverse connection that sends no HTTP/2 preface is.
		opts = append(opts, backchannel.WithStreamHandshakeTimeout(c.bc.limits.limits.HandshakeTimeout, c.bc.limits.handshake))
		creds = &outerCreds{
			TransportCredentials: backchannel.NewClientHandshaker(logger, c.bc.factory, bcfg, opts...).ClientHandshake(creds),
			d:                    c.diag,
		}
	}

	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			conn, err := c.dialRaw(ctx)
			diag.setDialed(err)
			return conn, err
		}),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.DefaultConfig, MinConnectTimeout: cfg.ConnectTimeout}),
		// One call per command: retrying hides the real failure.
		grpc.WithDisableRetry(),
		// An idle channel closes its transport, and with it the
		// backchannel: a client waiting for reverse calls is idle by design.
		grpc.WithIdleTimeout(0),
	}
	if cfg.Authority != "" || cfg.Network == "unix" {
		opts = append(opts, grpc.WithAuthority(c.authority()))
	}
	if cfg.KeepaliveTime > 0 {
		opts = append(opts, grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time: cfg.KeepaliveTime, Timeout: cfg.KeepaliveTime, PermitWithoutStream: true,
		}))
	}
	if cfg.MaxRecvMsgSize > 0 {
		opts = append(opts, grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(cfg.MaxRecvMsgSize)))
	}
	if cfg.UserAgent != "" {
		opts = append(opts, grpc.WithUserAgent(cfg.UserAgent))
	}
	opts = append(opts, cfg.DialOptions...)

	target := "passthrough:///" + cfg.Address
	if cfg.Network == "unix" {
		target = "passthrough:///unix:" + cfg.Address
	}
	cc, err := grpc.NewClient(target, opts...)
	if err != nil {
		c.bc.stop()
		return nil, fmt.Errorf("host: %w", err)
	}
	c.cc = cc
	start := time.Now()
	if err := c.waitReady(ctx); err != nil {
		c.Close()
		return nil, err
	}
	c.connectTime = time.Since(start)
	go c.watch()
	return c, nil
}

// watch closes c.lost when the connection stops being ready (the server
// closed it, the network failed) or is closed.
func (c *Conn) watch() {
	defer close(c.lost)
	s := connectivity.Ready
	for {
		if !c.cc.WaitForStateChange(c.watchCtx, s) {
			return
		}
		s = c.cc.GetState()
		if s != connectivity.Ready && s != connectivity.Connecting {
			return
		}
	}
}

// Lost is closed when the connection is no longer usable: the server closed
// it, the network failed, or Close was called. The backchannel is gone with
// it.
func (c *Conn) Lost() <-chan struct{} { return c.lost }

// waitReady connects and waits until the connection is ready or has
// failed once.
func (c *Conn) waitReady(parent context.Context) error {
	ctx, cancel := context.WithTimeout(parent, c.cfg.ConnectTimeout)
	defer cancel()
	c.cc.Connect()
	for {
		s := c.cc.GetState()
		switch s {
		case connectivity.Ready:
			return nil
		case connectivity.TransientFailure, connectivity.Shutdown:
			if err := c.explain(ctx); err != nil {
				return err
			}
			return fmt.Errorf("%w %s: the connection failed", ErrConnect, c.cfg.Address)
		}
		if !c.cc.WaitForStateChange(ctx, s) {
			if err := context.Cause(parent); err != nil {
				return fmt.Errorf("%w %s: %w", ErrConnect, c.cfg.Address, err)
			}
			if err := c.explain(ctx); err != nil {
				return err
			}
			return c.stalled()
		}
	}
}

// credentials returns the transport credentials of cfg. Those made from
// cfg.TLS tell d when the server asks for a client certificate that the
// configuration does not have.
func (cfg Config) credentials(d *diagnosis) (credentials.TransportCredentials, error) {
	switch {
	case cfg.Creds != nil && cfg.TLS != nil:
		return nil, errors.New("host: give Config.Creds or Config.TLS, not both")
	case cfg.Creds != nil:
		return cfg.Creds, nil
	case cfg.TLS != nil:
		tc := cfg.TLS.Clone()
		if len(tc.Certificates) == 0 && tc.GetClientCertificate == nil {
			tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				d.setCertRequested()
				return &tls.Certificate{}, nil // none: the server decides
			}
		}
		return credentials.NewTLS(tc), nil
	}
	return nil, errors.New("host: no transport credentials")
}

// dialRaw makes the TCP (or unix) connection.
func (c *Conn) dialRaw(ctx context.Context) (net.Conn, error) {
	return c.dialer.DialContext(ctx, c.cfg.Network, c.cfg.Address)
}

// authority is the :authority of calls, and the name TLS verifies.
func (c *Conn) authority() string {
	switch {
	case c.cfg.Authority != "":
		return c.cfg.Authority
	case c.cfg.Network == "unix":
		return "localhost"
	}
	return c.cfg.Address
}

// plaintext reports whether the connection has no TLS.
func (c *Conn) plaintext() bool { return c.base.Info().SecurityProtocol == "insecure" }

// ClientConn is the forward connection: use it for calls to the server.
func (c *Conn) ClientConn() *grpc.ClientConn { return c.cc }

// Multiplexed reports whether the connection has a backchannel.
func (c *Conn) Multiplexed() bool { return !c.cfg.NoMux }

// Address is the address dialed.
func (c *Conn) Address() string { return c.cfg.Address }

// ConnectTime is how long Dial took to make the connection ready.
func (c *Conn) ConnectTime() time.Duration { return c.connectTime }

// TLSState returns the TLS connection state when the connection uses TLS.
func (c *Conn) TLSState() (tls.ConnectionState, bool) {
	if ti, ok := c.diag.snapshot().authInfo.(credentials.TLSInfo); ok {
		return ti.State, true
	}
	return tls.ConnectionState{}, false
}

// Close closes the connection, its backchannel and the backchannel server.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		c.stopWatch()
		if c.cc != nil {
			c.closeErr = c.cc.Close()
		}
		c.bc.stop()
	})
	return c.closeErr
}

// outerCreds records an error of the multiplexing handshake itself (the
// wrapped handshake's errors are recorded by sniffCreds).
type outerCreds struct {
	credentials.TransportCredentials
	d *diagnosis
}

func (o *outerCreds) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, ai, err := o.TransportCredentials.ClientHandshake(ctx, authority, raw)
	if err != nil {
		o.d.setMuxErr(err)
	}
	return conn, ai, err
}

func (o *outerCreds) Clone() credentials.TransportCredentials {
	return &outerCreds{TransportCredentials: o.TransportCredentials.Clone(), d: o.d}
}
