package proxy

import (
	"errors"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/bcctl/bcctl/backchannel"
)

// Config configures a Proxy. UpstreamAddress is required.
type Config struct {
	// UpstreamNetwork is "tcp" (the default) or "unix"; UpstreamAddress is
	// host:port or the socket's path.
	UpstreamNetwork, UpstreamAddress string
	// UpstreamCreds are the transport credentials towards the upstream
	// (TLS, mTLS); nil means plaintext. For a multiplexed client the
	// backchannel handshake runs inside them.
	UpstreamCreds credentials.TransportCredentials
	// UpstreamAuthority is the :authority of the calls to the upstream;
	// "" means the address ("localhost" for a unix socket).
	UpstreamAuthority string
	// ListenCreds are the transport credentials of the listener; nil
	// means plaintext. Multiplexed and plain clients share the listener.
	ListenCreds credentials.TransportCredentials

	// Logger receives what the proxy reports: rejected connections,
	// upstream connections that fail. Nil discards.
	Logger *slog.Logger
	// Observer is told of connections, calls and side streams; nil
	// observes nothing.
	Observer Observer
	// NewID, when set, numbers the calls and side streams (the journal of
	// bcctl proxy numbers them with the rest of its journal); nil numbers
	// them from 1.
	NewID func() uint64
	// Tamper, when set, is offered every call before it is relayed as it
	// is (bcctl proxy --script).
	Tamper Tamper
	// KeepMessages is how many bytes of each call's messages, each way,
	// are kept for the Observer (Call.Requests, Call.Responses); 0 keeps
	// none and costs nothing. Messages beyond it are counted, not kept.
	KeepMessages int

	// MaxMsgSize is the largest message relayed, either way (default 4 MiB,
	// gRPC's default, so the proxy refuses what a default-configured peer
	// would). The proxy holds at most one message per direction of a call.
	MaxMsgSize int
	// ConnectTimeout bounds connecting to the upstream (TCP, TLS and the
	// backchannel handshake); default 10s. A call that arrives while the
	// upstream connection is being made waits for it.
	ConnectTimeout time.Duration
	// HandshakeTimeout bounds the transport and backchannel handshakes of
	// a client's connection (default 10s).
	HandshakeTimeout time.Duration
	// BackchannelIdleTimeout is how long the proxy's connection into a
	// client's backchannel stays up without reverse calls (default 30s; it
	// reconnects on the next reverse call).
	BackchannelIdleTimeout time.Duration
	// ClientSide is the yamux configuration the proxy uses as the server of
	// its clients' multiplexed connections; zero means
	// backchannel.DefaultServerConfiguration() (Gitaly's).
	ClientSide backchannel.Configuration
	// UpstreamSide is the yamux configuration the proxy uses as the client
	// of its multiplexed upstream connections; zero means
	// backchannel.DefaultConfiguration() (Praefect's) with a 16 MiB stream
	// window, as the upstream's own side has: with Praefect's 256 KiB the
	// proxy would read the upstream's data more slowly than the client
	// does. What the proxy holds is bounded by the HTTP/2 windows, not by
	// this one, since gRPC reads the session's stream as data arrives.
	UpstreamSide backchannel.Configuration
	// DialOptions are added to the options of every upstream connection.
	DialOptions []grpc.DialOption
	// ServerOptions are added to the options of the listening server.
	ServerOptions []grpc.ServerOption
}

const (
	defaultMaxMsgSize       = 4 << 20
	defaultConnectTimeout   = 10 * time.Second
	defaultHandshakeTimeout = 10 * time.Second
	defaultIdleTimeout      = 30 * time.Second
	// maxConcurrentStreams bounds the calls in flight on one client
	// connection, each way (grpc-go has no limit by default).
	maxConcurrentStreams = 1024
	// readBufferSize is the read buffer of the HTTP/2 transports the
	// proxy runs on yamux streams, whose reads copy from memory already.
	readBufferSize = 8 << 10
	// writeBufferSize is the write buffer of the same transports: large,
	// so that a large message goes out in few yamux frames (each one a
	// system call); shared, so an idle connection holds none.
	writeBufferSize = 256 << 10
	// streamWorkers is how many goroutines each of the proxy's servers
	// keeps to run calls, so that a call does not start a goroutine and
	// grow its stack (calls beyond that many in flight still get their
	// own).
	streamWorkers = 16
	// relayStreamWindow and relayConnWindow are the HTTP/2 flow-control
	// windows of every connection the proxy serves or makes: fixed, so no
	// bandwidth probes (a ping for every burst of data) add frames to each
	// call, and as large as gRPC's own probing lets them grow. They bound
	// what a peer can send before the proxy reads it: 4 MiB per call and
	// 16 MiB per connection, each way.
	relayStreamWindow = 4 << 20
	relayConnWindow   = 16 << 20
	// upstreamSideWindow is the yamux stream window of the proxy's
	// multiplexed upstream connections.
	upstreamSideWindow = 16 << 20
)

func (c *Config) validate() error {
	if c.UpstreamAddress == "" {
		return errors.New("proxy: config: UpstreamAddress is required")
	}
	switch c.UpstreamNetwork {
	case "", "tcp", "unix":
	default:
		return errors.New("proxy: config: UpstreamNetwork must be tcp or unix")
	}
	if c.KeepMessages < 0 || c.MaxMsgSize < 0 {
		return errors.New("proxy: config: KeepMessages and MaxMsgSize must not be negative")
	}
	return nil
}

func (c *Config) withDefaults() Config {
	out := *c
	if out.UpstreamNetwork == "" {
		out.UpstreamNetwork = "tcp"
	}
	if out.Logger == nil {
		out.Logger = slog.New(slog.DiscardHandler)
	}
	if out.Observer == nil {
		out.Observer = NopObserver{}
	}
	if out.MaxMsgSize == 0 {
		out.MaxMsgSize = defaultMaxMsgSize
	}
	if out.ConnectTimeout <= 0 {
		out.ConnectTimeout = defaultConnectTimeout
	}
	if out.HandshakeTimeout <= 0 {
		out.HandshakeTimeout = defaultHandshakeTimeout
	}
	if out.BackchannelIdleTimeout <= 0 {
		out.BackchannelIdleTimeout = defaultIdleTimeout
	}
	if out.ClientSide == (backchannel.Configuration{}) {
		out.ClientSide = backchannel.DefaultServerConfiguration()
	}
	if out.UpstreamSide == (backchannel.Configuration{}) {
		out.UpstreamSide = backchannel.DefaultConfiguration()
		out.UpstreamSide.MaximumStreamWindowSizeBytes = upstreamSideWindow
	}
	if out.UpstreamAuthority == "" && out.UpstreamNetwork == "unix" {
		out.UpstreamAuthority = "localhost"
	}
	return out
}
