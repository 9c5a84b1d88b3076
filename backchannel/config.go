package backchannel

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/hashicorp/yamux"
)

// Configuration holds the yamux settings of one side of a multiplexed
// connection. Keepalives are always off: gRPC has its own.
//
// A zero field means the library's default for that side (the defaults of
// DefaultConfiguration for a client, of DefaultServerConfiguration for a
// server), as in Gitaly, so a literal that sets only Gitaly's three fields
// (MaximumStreamWindowSizeBytes, AcceptBacklog, StreamCloseTimeout) works.
type Configuration struct {
	// MaximumStreamWindowSizeBytes is the most data a peer may send on one
	// stream before this side has read it. It is advertised to the peer and
	// bounds the throughput of large messages flowing into this side; it is
	// at least 256 KiB. Zero means 256 KiB for a client, 16 MiB for a
	// server.
	MaximumStreamWindowSizeBytes uint32
	// AcceptBacklog is the number of peer-opened streams that may wait to
	// be accepted. Zero means 256 for a client, 1 for a server.
	AcceptBacklog int
	// StreamCloseTimeout is how long a half-closed stream waits for the
	// peer's close before it is reset. Zero means 5 minutes; a negative
	// value waits for ever.
	StreamCloseTimeout time.Duration
	// StreamOpenTimeout is how long an opened stream waits for the peer's
	// acknowledgement before the session is torn down. Zero means 75
	// seconds; a negative value waits for ever.
	StreamOpenTimeout time.Duration
	// ConnectionWriteTimeout bounds a single write to the connection. Zero
	// means 10 seconds; it cannot be disabled.
	ConnectionWriteTimeout time.Duration
}

const (
	minStreamWindow = 256 * 1024
	// serverStreamWindow is the window Gitaly's server side advertises.
	serverStreamWindow = 16 * 1024 * 1024
)

// DefaultConfiguration returns yamux's defaults, which is what Gitaly's
// clients (Praefect) use: a 256 KiB stream window and a backlog of 256.
func DefaultConfiguration() Configuration {
	d := yamux.DefaultConfig()
	return Configuration{
		MaximumStreamWindowSizeBytes: d.MaxStreamWindowSize,
		AcceptBacklog:                d.AcceptBacklog,
		StreamCloseTimeout:           d.StreamCloseTimeout,
		StreamOpenTimeout:            d.StreamOpenTimeout,
		ConnectionWriteTimeout:       d.ConnectionWriteTimeout,
	}
}

// DefaultServerConfiguration returns the settings of Gitaly's server side:
// yamux's defaults with a backlog of 1 (a client opens exactly one stream)
// and a 16 MiB stream window.
func DefaultServerConfiguration() Configuration {
	c := DefaultConfiguration()
	c.AcceptBacklog = 1
	c.MaximumStreamWindowSizeBytes = serverStreamWindow
	return c
}

// withDefaults returns c with each zero field taken from defaults.
func (c Configuration) withDefaults(defaults Configuration) Configuration {
	if c.MaximumStreamWindowSizeBytes == 0 {
		c.MaximumStreamWindowSizeBytes = defaults.MaximumStreamWindowSizeBytes
	}
	if c.AcceptBacklog == 0 {
		c.AcceptBacklog = defaults.AcceptBacklog
	}
	if c.StreamCloseTimeout == 0 {
		c.StreamCloseTimeout = defaults.StreamCloseTimeout
	}
	if c.StreamOpenTimeout == 0 {
		c.StreamOpenTimeout = defaults.StreamOpenTimeout
	}
	if c.ConnectionWriteTimeout == 0 {
		c.ConnectionWriteTimeout = defaults.ConnectionWriteTimeout
	}
	return c
}

// validate reports what is wrong with c, whose zero fields have been
// given their defaults.
func (c Configuration) validate() error {
	if c.MaximumStreamWindowSizeBytes < minStreamWindow {
		return fmt.Errorf("backchannel: maximum stream window %d bytes is below yamux's minimum of %d", c.MaximumStreamWindowSizeBytes, minStreamWindow)
	}
	if c.AcceptBacklog <= 0 {
		return fmt.Errorf("backchannel: accept backlog %d must be positive", c.AcceptBacklog)
	}
	if c.ConnectionWriteTimeout <= 0 {
		return fmt.Errorf("backchannel: connection write timeout %s must be positive", c.ConnectionWriteTimeout)
	}
	return nil
}

// yamuxConfig turns c into a yamux configuration that logs to logger.
func (c Configuration) yamuxConfig(logger *slog.Logger) *yamux.Config {
	y := yamux.DefaultConfig()
	y.EnableKeepAlive = false
	y.AcceptBacklog = c.AcceptBacklog
	y.MaxStreamWindowSize = c.MaximumStreamWindowSizeBytes
	// yamux waits for ever when these are zero.
	y.StreamCloseTimeout = max(c.StreamCloseTimeout, 0)
	y.StreamOpenTimeout = max(c.StreamOpenTimeout, 0)
	y.ConnectionWriteTimeout = c.ConnectionWriteTimeout
	// yamux refuses a configuration with both LogOutput and Logger.
	y.LogOutput = nil
	y.Logger = yamuxLogger{logger: logger}
	return y
}

// orDiscard returns logger, or a logger that discards everything.
func orDiscard(logger *slog.Logger) *slog.Logger {
	if logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return logger
}

// yamuxLogger adapts yamux's Printf-style logging to slog, at the debug
// level whatever yamux calls a line ("[ERR]", "[WARN]"): what yamux logs (a
// peer that reset the connection, a TLS alert, a read on a connection
// closed under it) is what the session's callers get as errors and report
// themselves, so above debug it would only repeat it, ahead of and worded
// worse than their report.
type yamuxLogger struct {
	logger *slog.Logger
}

func (l yamuxLogger) Print(v ...any)                 { l.log(fmt.Sprint(v...)) }
func (l yamuxLogger) Printf(format string, v ...any) { l.log(fmt.Sprintf(format, v...)) }
func (l yamuxLogger) Println(v ...any)               { l.log(fmt.Sprintln(v...)) }

func (l yamuxLogger) log(msg string) {
	ctx := context.Background()
	if !l.logger.Enabled(ctx, slog.LevelDebug) {
		return
	}
	l.logger.Log(ctx, slog.LevelDebug, strings.TrimSpace(msg), "component", "yamux")
}
