package serve

import (
	"errors"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/journal"
	"github.com/bcctl/bcctl/internal/script"
)

// JournalSink receives every journal event, in the order the events were
// recorded, from a goroutine of the Hub's: a call does not wait for its
// entry to be rendered and written (up to JournalQueueLen events wait for
// the sink; beyond that, calls wait for room, so no entry is ever lost).
// Hub.Close (Server.Shutdown) returns once every event recorded before it
// has been written; an event recorded after Close is written in the
// goroutine that records it. The sink is never called concurrently. An
// error counts as one lost entry, or as many as a *journal.LostError says.
type JournalSink interface {
	WriteEvent(ev *Event) error
}

// JournalWriter is the JournalSink of a journal file: each event's entry
// written as a JSON line. Give it a buffered journal.Writer, which the hub
// flushes JournalLinger after it wrote entries, with those that came meanwhile.
func JournalWriter(w *journal.Writer) JournalFlusher { return journalWriter{w} }

type journalWriter struct{ w *journal.Writer }

func (j journalWriter) WriteEvent(ev *Event) error {
	_, err := j.w.Write(ev.Entry())
	return err
}

func (j journalWriter) Flush() error { return j.w.Flush() }

// JournalSinkFunc adapts a function to a JournalSink.
type JournalSinkFunc func(ev *Event) error

// WriteEvent calls f(ev).
func (f JournalSinkFunc) WriteEvent(ev *Event) error { return f(ev) }

// Config configures a Server. Schema and Script are required.
type Config struct {
	// Schema holds the services serve answers; reflection and health are
	// served for it.
	Schema dynamic.Source
	// PeerSchema holds the services peers offer on their backchannels: the
	// methods of the script's `call` steps and of CallPeer. Nil means
	// Schema. CallPeer also asks a peer's own reflection for methods this
	// schema does not know.
	PeerSchema dynamic.Source
	// Script answers the forward calls; Reload replaces it.
	Script *script.Script
	// Creds are the transport credentials of the listener (TLS, mTLS);
	// nil means insecure. The backchannel handshake runs inside them.
	Creds credentials.TransportCredentials
	// Logger receives what serve reports: rejected connections, failed
	// on_connect steps, journal write errors. Nil discards.
	Logger *slog.Logger
	// Journal receives every event; nil keeps them only in memory.
	Journal JournalSink
	// JournalBacklog is how many recent events are kept in memory for
	// subscribers that ask for the past (default 10000; negative keeps
	// none).
	JournalBacklog int
	// Bytes says how journal entries (and so the journal sink, the admin
	// API and the TUI) show bytes fields: "" is base64, as protobuf JSON
	// writes them; dynamic.BytesText shows UTF-8 bytes as text.
	Bytes dynamic.BytesMode
	// MaxCalls requests a stop (see StopRequested) once this many forward
	// calls have been answered; 0 means no limit.
	MaxCalls uint64
	// NoDiscovery turns off listing each peer's backchannel services by
	// reflection when it connects.
	NoDiscovery bool
	// DiscoveryTimeout bounds the reflection request of one peer (default
	// 10s).
	DiscoveryTimeout time.Duration
	// HandshakeTimeout bounds the transport and backchannel handshakes of a
	// new connection (default 10s): a client that connects and sends
	// nothing holds a goroutine that long at most.
	HandshakeTimeout time.Duration
	// BackchannelIdleTimeout is how long a dial-back connection to a peer
	// stays connected without reverse calls before it is released (it
	// reconnects on the next call). Default 30s.
	BackchannelIdleTimeout time.Duration
	// ReadBufferSize is the read buffer of each connection's HTTP/2
	// transport (default 8 KiB; grpc-go's own default is 32 KiB). It is the
	// largest part of what an idle peer costs; below 4 KiB, reads of small
	// calls need more system calls.
	ReadBufferSize int
	// Env looks up `${env.NAME}` in the script; nil means os.Getenv.
	Env func(string) string
	// ServerOptions are added to the gRPC server's options (message size
	// limits, keepalive, interceptors).
	ServerOptions []grpc.ServerOption
	// BackchannelDialOptions are added to the options of the dial-back
	// connections (message size limits, per-RPC credentials).
	BackchannelDialOptions []grpc.DialOption
	// MuxWindow is the yamux stream window serve advertises to each
	// multiplexed peer: how much a peer may send on one stream (its forward
	// calls, a sidechannel's body) before serve has read it. Zero means
	// Gitaly's 16 MiB (backchannel.DefaultServerConfiguration).
	MuxWindow uint32
}

const (
	defaultJournalBacklog   = 10000
	defaultDiscoveryTimeout = 10 * time.Second
	defaultHandshakeTimeout = 10 * time.Second
	defaultIdleTimeout      = 30 * time.Second
	defaultReadBufferSize   = 8 << 10
	// discoveryConcurrency bounds the reflection requests in flight, so
	// that hundreds of peers joining at once do not all reflect at once.
	discoveryConcurrency = 16
)

// muxConfiguration is the yamux configuration of serve's side of each
// multiplexed connection.
func (c *Config) muxConfiguration() backchannel.Configuration {
	mc := backchannel.DefaultServerConfiguration()
	if c.MuxWindow > 0 {
		mc.MaximumStreamWindowSizeBytes = c.MuxWindow
	}
	return mc
}

func (c *Config) validate() error {
	if c.Schema == nil {
		return errors.New("serve: config: Schema is required")
	}
	if c.Script == nil {
		return errors.New("serve: config: Script is required")
	}
	return nil
}

func (c *Config) withDefaults() Config {
	out := *c
	if out.PeerSchema == nil {
		out.PeerSchema = out.Schema
	}
	if out.Logger == nil {
		out.Logger = slog.New(slog.DiscardHandler)
	}
	if out.JournalBacklog == 0 {
		out.JournalBacklog = defaultJournalBacklog
	}
	if out.JournalBacklog < 0 {
		out.JournalBacklog = 0
	}
	if out.DiscoveryTimeout <= 0 {
		out.DiscoveryTimeout = defaultDiscoveryTimeout
	}
	if out.HandshakeTimeout <= 0 {
		out.HandshakeTimeout = defaultHandshakeTimeout
	}
	if out.ReadBufferSize <= 0 {
		out.ReadBufferSize = defaultReadBufferSize
	}
	if out.BackchannelIdleTimeout <= 0 {
		out.BackchannelIdleTimeout = defaultIdleTimeout
	}
	return out
}
