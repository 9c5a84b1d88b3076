package proxy

import (
	"cmp"
	"net"
	"slices"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/bcctl/bcctl/internal/calls"
)

// Kind is the kind of a client's connection, and so of its upstream
// connection.
type Kind int

// Kinds of connections.
const (
	// Multiplexed: the client did the backchannel handshake; the upstream
	// connection does it too, and reverse calls and side streams flow.
	Multiplexed Kind = iota + 1
	// Plain: a plain gRPC client, relayed over a plain upstream connection.
	Plain
)

// String returns "multiplexed" or "plain".
func (k Kind) String() string {
	if k == Multiplexed {
		return "multiplexed"
	}
	return "plain"
}

// Side names one end of the proxy.
type Side int

// The sides.
const (
	// NoSide: nobody (a call that ended normally).
	NoSide Side = iota
	// SideClient: the program that connected to the proxy.
	SideClient
	// SideUpstream: the server the proxy connects to.
	SideUpstream
	// SideProxy: the proxy itself (it stopped, or a rule answered).
	SideProxy
)

// String returns "client", "upstream", "proxy", or "" for NoSide.
func (s Side) String() string {
	switch s {
	case SideClient:
		return "client"
	case SideUpstream:
		return "upstream"
	case SideProxy:
		return "proxy"
	}
	return ""
}

// Conn is one client connection and its upstream connection. Its fields
// are set when it opens and not changed; the counters are live.
type Conn struct {
	// ID numbers the proxy's client connections from 1.
	ID uint64
	// Kind says whether the client multiplexes.
	Kind Kind
	// PeerID is the backchannel ID the proxy gave a multiplexed client
	// (what `bcctl peers` lists); 0 for a plain client.
	PeerID uint64
	// ClientAddr is the client's address.
	ClientAddr net.Addr
	// Opened is when the client's handshake completed.
	Opened time.Time

	// Forward, Reverse and SideStreams count the connection's finished
	// calls and side streams.
	Forward, Reverse, SideStreams atomic.Uint64
}

// Call is one relayed call, forward (client to upstream) or reverse
// (upstream into the client's backchannel). The proxy fills it in as the
// call goes and hands it to the Observer when it starts and when it ends;
// after the end it is not modified.
type Call struct {
	// ID numbers the proxy's calls and side streams from 1.
	ID uint64
	// Cause is the ID of the forward call in flight on the same
	// connection during which this reverse call started (the latest to
	// start, when several were in flight); 0 when none was.
	Cause uint64
	// Dir is calls.Forward or calls.Reverse.
	Dir calls.Direction
	// Conn is the client connection the call belongs to.
	Conn *Conn
	// Method is "/pkg.Service/Method" as it travelled.
	Method string
	// Metadata is the request metadata as the caller sent it (with the
	// caller's :authority and user-agent).
	Metadata metadata.MD

	// Requests and Responses are the messages each way as they travelled,
	// as far as Config.KeepMessages allows.
	Requests, Responses [][]byte
	// RequestCount, ResponseCount, RequestBytes and ResponseBytes count
	// every message, kept or not.
	RequestCount, ResponseCount int
	RequestBytes, ResponseBytes int64

	// Header and Trailer are the response metadata as the caller got them;
	// Header is nil when none was sent.
	Header, Trailer metadata.MD
	// Status is how the call ended for the caller.
	Status *status.Status
	// EndedBy says who ended the call when it did not end with the
	// callee's answer: the caller (it cancelled, or its deadline passed),
	// the callee (its connection went away), or the proxy. NoSide when the
	// callee answered.
	EndedBy Side
	// Gone is set when EndedBy's connection went away mid-call (rather
	// than the side cancelling the call).
	Gone bool
	// Rule is the script rule that answered, or changed, the call (bcctl
	// proxy --script); zero when none did. Changed is set when the callee
	// answered but the caller got another status.
	Rule    calls.RuleRef
	Changed bool
	// Tampered is set when Config.Tamper handled the call (answered it, or
	// passed it on itself).
	Tampered bool

	// Start is when the call reached the proxy; End when its status went
	// back to the caller.
	Start, End time.Time
	// OutStart is when the proxy opened the call to the callee, OutEnd
	// when the callee's status arrived; both zero when the callee was
	// never reached.
	OutStart, OutEnd time.Time
}

// Duration is how long the call took as the caller saw it.
func (c *Call) Duration() time.Duration { return c.End.Sub(c.Start) }

// CalleeDuration is how long the call took on the leg between the proxy
// and the callee.
func (c *Call) CalleeDuration() time.Duration { return c.OutEnd.Sub(c.OutStart) }

// Added is the latency the proxy added: the caller's duration less the
// callee's leg.
func (c *Call) Added() time.Duration {
	if c.OutStart.IsZero() {
		return c.Duration()
	}
	return c.Duration() - c.CalleeDuration()
}

// Caller returns the side that made the call.
func (c *Call) Caller() Side {
	if c.Dir == calls.Reverse {
		return SideUpstream
	}
	return SideClient
}

// Callee returns the side that answered the call.
func (c *Call) Callee() Side {
	if c.Dir == calls.Reverse {
		return SideClient
	}
	return SideUpstream
}

// Observer is told what the proxy relays. Its methods are called from the
// goroutines of the connections and calls, concurrently; they must return
// quickly and must not modify what they are given.
type Observer interface {
	// ConnOpened is called when a client completes its handshake.
	ConnOpened(c *Conn)
	// ConnClosed is called when a client connection has closed; by says
	// which side closed it first.
	ConnClosed(c *Conn, by Side)
	// CallStarted is called when a call reaches the proxy.
	CallStarted(c *Call)
	// CallEnded is called when a call's status has been decided, before it
	// is sent to the caller.
	CallEnded(c *Call)
	// SideStreamEnded is called when a side stream has closed both ways.
	SideStreamEnded(s *SideStream)
}

// NopObserver observes nothing; embed it to implement only some methods.
type NopObserver struct{}

// ConnOpened does nothing.
func (NopObserver) ConnOpened(*Conn) {}

// ConnClosed does nothing.
func (NopObserver) ConnClosed(*Conn, Side) {}

// CallStarted does nothing.
func (NopObserver) CallStarted(*Call) {}

// CallEnded does nothing.
func (NopObserver) CallEnded(*Call) {}

// SideStreamEnded does nothing.
func (NopObserver) SideStreamEnded(*SideStream) {}

func sortConns(cs []*Conn) {
	slices.SortFunc(cs, func(a, b *Conn) int { return cmp.Compare(a.ID, b.ID) })
}
