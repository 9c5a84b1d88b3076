package backchannel

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"sync/atomic"
	"time"
)

// The ping budget of a peer. Neither Gitaly nor bcctl sends yamux pings
// (keepalives are off on both sides; gRPC has its own), but a peer may
// still ping, and yamux answers each ping from a goroutine of its own that
// waits up to ConnectionWriteTimeout for the send loop: a peer that floods
// pings and reads nothing back makes yamux spawn a goroutine per ping. So a
// peer may send PingBurst pings at once and PingsPerSecond after that, and
// may leave at most PingBurst of them unanswered; a peer that goes beyond
// either is dropped (its connection is closed).
const (
	// PingBurst is how many yamux pings a peer may send at once, and how
	// many of its pings may be waiting for their answer.
	PingBurst = 32
	// PingsPerSecond is the rate at which a peer may keep pinging after a
	// burst (yamux's own keepalive pings once every 30 seconds).
	PingsPerSecond = 10
)

// yamux frame types and flags the guard looks at (the header layout is in
// coalesce.go).
const (
	yamuxTypePing = 2
	yamuxFlagSYN  = 1
	yamuxFlagACK  = 2
)

// errPingFlood is what the session reads from a connection the guard
// dropped. It wraps net.ErrClosed: the guard closed the connection.
var errPingFlood = fmt.Errorf("backchannel: peer exceeded its yamux ping budget (%d at once, %d per second): %w", PingBurst, PingsPerSecond, net.ErrClosed)

// pingGuard is the connection under a yamux session, seen from the
// session. It follows the frames the peer sends as the session reads them
// (headers, and data frames' bodies, which it skips) and charges each ping
// the peer sends against the ping budget; it drops the peer when the budget
// is spent. It never changes a byte in either direction.
//
// The session reads from one goroutine (its receive loop), so the parser
// state needs no lock; only the count of unanswered pings is shared with
// the send loop.
type pingGuard struct {
	net.Conn
	logger *slog.Logger
	now    func() time.Time

	// The parser, touched only by Read.
	header    [yamuxHeaderLen]byte
	headerLen int    // bytes of the current header read so far
	bodyLeft  uint32 // bytes of the current data frame's body still to come
	tokens    float64
	refilled  time.Time
	frameLen  uint32 // length of the current data frame
	yield     bool   // a data frame above yieldAbove has ended: yield before the next read

	// unanswered counts pings passed to the session whose answer has not
	// been written yet.
	unanswered atomic.Int32
}

// guardPings returns conn guarded by a pingGuard, unless off.
func guardPings(conn net.Conn, logger *slog.Logger, off bool) net.Conn {
	if off {
		return conn
	}
	return newPingGuard(conn, logger)
}

// newPingGuard guards conn; violations are logged to logger.
func newPingGuard(conn net.Conn, logger *slog.Logger) *pingGuard {
	return &pingGuard{Conn: conn, logger: logger, now: time.Now, tokens: PingBurst}
}

// yieldAbove is the size above which a data frame, once the session has
// read it, makes Read let other goroutines run before the next frame.
//
// yamux's receive loop copies each data frame into its stream's buffer
// holding the lock the stream's reader needs, and goes straight on to the
// next frame while the socket has one: with a window larger than yamux's
// default, a fast sender keeps it doing so, the woken reader waits (on
// two busy cores, for the loop's time slice), and the stream's buffer
// grows by doubling up to the window, a new zeroed slice and a copy of
// what is unread each time. Yielding between frames, which is where the
// loop holds no stream's lock, lets the reader take what has arrived
// first. Only after frames larger than yamux's default window of 256 KiB,
// which only a larger window lets through: connections with the default
// window, and small calls (whose frames are a few hundred bytes) never
// yield. Yielding after every 64 KiB of data made 64 concurrent unary
// calls 10-20 % slower, the receive loop waiting its turn behind their
// goroutines.
const yieldAbove = 256 << 10

// Read reads from the connection and inspects what was read. When the
// peer has spent its ping budget, Read closes the connection and returns
// errPingFlood, and the session ends. After a data frame larger than
// yieldAbove it first lets other goroutines run.
func (g *pingGuard) Read(p []byte) (int, error) {
	if g.yield && g.bodyLeft == 0 {
		g.yield = false
		runtime.Gosched()
	}
	n, err := g.Conn.Read(p)
	if n > 0 && !g.inspect(p[:n]) {
		g.logger.Warn("backchannel: dropping a peer that floods yamux pings",
			"remote", addrString(g.Conn.RemoteAddr()), "burst", PingBurst, "per_second", PingsPerSecond)
		g.Conn.Close()
		return 0, errPingFlood
	}
	return n, err
}

// Write counts the session's answers to pings on their way out.
func (g *pingGuard) Write(p []byte) (int, error) {
	if len(p) == yamuxHeaderLen && p[1] == yamuxTypePing && binary.BigEndian.Uint16(p[2:4])&yamuxFlagACK != 0 {
		g.unanswered.Add(-1)
	}
	return g.Conn.Write(p)
}

// inspect follows the frames in b, which continue where the last read
// stopped. It reports false when the peer has spent its ping budget.
func (g *pingGuard) inspect(b []byte) bool {
	for len(b) > 0 {
		if g.bodyLeft > 0 {
			skip := min(uint32(len(b)), g.bodyLeft)
			g.bodyLeft -= skip
			if g.bodyLeft == 0 && g.frameLen > yieldAbove {
				g.yield = true
			}
			b = b[skip:]
			continue
		}
		n := copy(g.header[g.headerLen:], b)
		g.headerLen += n
		b = b[n:]
		if g.headerLen < yamuxHeaderLen {
			return true
		}
		g.headerLen = 0
		switch g.header[1] {
		case yamuxTypeData:
			g.bodyLeft = binary.BigEndian.Uint32(g.header[8:12])
			g.frameLen = g.bodyLeft
		case yamuxTypePing:
			if binary.BigEndian.Uint16(g.header[2:4])&yamuxFlagSYN != 0 && !g.admitPing() {
				return false
			}
		}
		// Other frames carry no body. A header yamux cannot parse ends
		// the session in yamux's receive loop.
	}
	return true
}

// admitPing charges one ping against the budget: a token bucket of
// PingBurst refilled at PingsPerSecond, and at most PingBurst unanswered.
func (g *pingGuard) admitPing() bool {
	now := g.now()
	if !g.refilled.IsZero() {
		g.tokens = min(PingBurst, g.tokens+now.Sub(g.refilled).Seconds()*PingsPerSecond)
	}
	g.refilled = now
	if g.tokens < 1 || g.unanswered.Load() >= PingBurst {
		return false
	}
	g.tokens--
	g.unanswered.Add(1)
	return true
}
