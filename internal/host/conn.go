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
)

// ErrConnect is wrapped by the errors of Dial when the connection could not
// be made: refused, timed out, a failed TLS handshake.
var ErrConnect = errors.New("cannot connect to")

// ErrNotMultiplexing is wrapped by the errors of Dial when the server did
// not answer the backchannel handshake: it is a plain gRPC server (or
// something else). Dialing with Config.NoMux connects to such servers.
var ErrNotMultiplexing = errors.New("the server does not speak the backchannel protocol")

// DefaultConnectTimeout is Config.ConnectTimeout when it is zero (grpcurl's
// default).
const DefaultConnectTimeout = 10 * time.Second

// Config says how to reach a server.
type Config struct {
	// Network is "tcp" or "unix"; Address is host:port or a socket path.
	Network, Address string
	// Creds are the transport credentials (TLS, or insecure for plaintext).
	// Unless NoMux, the backchannel handshake runs after theirs.
	Creds credentials.TransportCredentials
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
	// zero means backchannel.DefaultConfiguration().
	Backchannel backchannel.Configuration
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
	if cfg.Creds == nil {
		return nil, errors.New("host: no transport credentials")
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Conn{cfg: cfg, diag: &diagnosis{}, bc: newBackchannelServer(logger, cfg.MaxRecvMsgSize), lost: make(chan struct{})}
	c.watchCtx, c.stopWatch = context.WithCancel(context.Background())

	var creds credentials.TransportCredentials = &sniffCreds{TransportCredentials: cfg.Creds, d: c.diag}
	if !cfg.NoMux {
		bcfg := cfg.Backchannel
		if bcfg == (backchannel.Configuration{}) {
			bcfg = backchannel.DefaultConfiguration()
		}
		creds = &outerCreds{
			TransportCredentials: backchannel.NewClientHandshaker(logger, c.bc.factory, bcfg).ClientHandshake(creds),
			d:                    c.diag,
		}
	}

	network, address := cfg.Network, cfg.Address
	dialer := &net.Dialer{Timeout: cfg.ConnectTimeout}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			conn, err := dialer.DialContext(ctx, network, address)
			c.diag.setDialErr(err)
			return conn, err
		}),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.DefaultConfig, MinConnectTimeout: cfg.ConnectTimeout}),
		// One call per command: retrying hides the real failure.
		grpc.WithDisableRetry(),
		// An idle channel closes its transport, and with it the
		// backchannel: a client waiting for reverse calls is idle by design.
		grpc.WithIdleTimeout(0),
	}
	authority := cfg.Authority
	if authority == "" && network == "unix" {
		authority = "localhost"
	}
	if authority != "" {
		opts = append(opts, grpc.WithAuthority(authority))
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

	target := "passthrough:///" + address
	if network == "unix" {
		target = "passthrough:///unix:" + address
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
			if err := c.diag.explain(c.cfg.Address, !c.cfg.NoMux, c.cfg.Creds.Info().SecurityProtocol == "insecure"); err != nil {
				return err
			}
			return fmt.Errorf("%w %s: the connection failed", ErrConnect, c.cfg.Address)
		}
		if !c.cc.WaitForStateChange(ctx, s) {
			if err := context.Cause(parent); err != nil {
				return fmt.Errorf("%w %s: %w", ErrConnect, c.cfg.Address, err)
			}
			if err := c.diag.explain(c.cfg.Address, !c.cfg.NoMux, c.cfg.Creds.Info().SecurityProtocol == "insecure"); err != nil {
				return err
			}
			return fmt.Errorf("%w %s: timed out after %s", ErrConnect, c.cfg.Address, c.cfg.ConnectTimeout)
		}
	}
}

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
	c.diag.mu.Lock()
	defer c.diag.mu.Unlock()
	if ti, ok := c.diag.authInfo.(credentials.TLSInfo); ok {
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
		o.d.mu.Lock()
		o.d.muxErr = err
		o.d.mu.Unlock()
	}
	return conn, ai, err
}

func (o *outerCreds) Clone() credentials.TransportCredentials {
	return &outerCreds{TransportCredentials: o.TransportCredentials.Clone(), d: o.d}
}
