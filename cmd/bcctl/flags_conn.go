package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/bcctl/bcctl/internal/host"
)

// ConnFlags are the connection flags of clients: grpcurl's timeouts and
// limits, --unix, and --no-mux.
type ConnFlags struct {
	ConnectTimeout time.Duration
	KeepaliveTime  time.Duration
	MaxTime        time.Duration
	MaxMsgSize     int
	// MaxReverseCalls and MaxReverseConns bound what the server can make
	// the hosted backchannel server spend (host.Limits).
	MaxReverseCalls uint32
	MaxReverseConns int
	Unix            bool
	NoMux           bool
	UserAgent       string
	// MuxWindow is --mux-window: the yamux stream window this side of the
	// multiplexed connection advertises (0: yamux's 256 KiB, Gitaly's
	// client's).
	MuxWindow uint32
}

// AddFlags adds the flags of a client connection.
func (c *ConnFlags) AddFlags(fs *pflag.FlagSet) {
	c.ConnectTimeout = 10 * time.Second
	fs.Var(secondsValue{&c.ConnectTimeout}, "connect-timeout", "how long to wait for the connection (`seconds` like grpcurl, or a duration like 500ms)")
	fs.Var(secondsValue{&c.KeepaliveTime}, "keepalive-time", "send a keepalive ping after this long idle (`seconds` or a duration); the connection fails when it goes unanswered as long")
	fs.Var(secondsValue{&c.MaxTime}, "max-time", "the most the whole command may take (`seconds` or a duration); its passing exits 68, DEADLINE_EXCEEDED")
	fs.IntVar(&c.MaxMsgSize, "max-msg-sz", 0, "largest message accepted, in `bytes` (default 4194304)")
	fs.Uint32Var(&c.MaxReverseCalls, "max-reverse-calls", host.DefaultMaxReverseCalls, "most reverse calls the server may have in flight on one reverse connection; it queues the others")
	fs.IntVar(&c.MaxReverseConns, "max-reverse-conns", host.DefaultMaxReverseConns, "most reverse connections the server may have open at once; "+strconv.Itoa(host.DefaultAcceptBacklog)+" more wait, and yamux resets any beyond")
	fs.BoolVar(&c.Unix, "unix", false, "the address is the path of a unix socket")
	fs.BoolVar(&c.NoMux, "no-mux", false, "connect as a plain gRPC client: no backchannel handshake (for servers that do not speak it)")
	fs.StringVar(&c.UserAgent, "user-agent", "", "`text` put in front of the User-Agent header")
	fs.Var(muxWindowValue{&c.MuxWindow}, "mux-window", muxWindowUsage("256KiB, Gitaly's client's"))
}

// secondsValue is a duration flag that takes grpcurl's float seconds
// ("10", "0.5") or a Go duration ("10s", "500ms").
type secondsValue struct{ d *time.Duration }

func (v secondsValue) String() string {
	if v.d == nil || *v.d == 0 {
		return "0"
	}
	return v.d.String()
}

func (v secondsValue) Set(s string) error {
	d, err := parseSeconds(s)
	if err != nil {
		return err
	}
	*v.d = d
	return nil
}

func (v secondsValue) Type() string { return "duration" }

func parseSeconds(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if f < 0 {
			return 0, fmt.Errorf("%q is negative", s)
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is neither seconds (10, 0.5) nor a duration (10s, 500ms)", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("%q is negative", s)
	}
	return d, nil
}

func globalTypes() *protoregistry.Types { return protoregistry.GlobalTypes }
