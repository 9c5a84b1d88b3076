package proxy

import (
	"errors"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/bcctl/bcctl/internal/calls"
)

// link is one client connection with its own upstream connection of the
// same kind. Every call the client makes goes to that upstream connection,
// and every reverse call the upstream makes on it comes back to this
// client: nothing is shared between links but the servers that parse the
// calls.
type link struct {
	p    *Proxy
	info *Conn
	// upstream is the link's own connection to the upstream. gRPC
	// reconnects it when the upstream goes away; reverse calls on the new
	// connection still come back to this client.
	upstream *grpc.ClientConn

	// losses counts, per side, how often that side's connection failed or
	// closed: a call that ends while its callee's count grew ended because
	// the callee went away.
	losses [SideProxy + 1]atomic.Uint64
	// clientSession is a multiplexed client's yamux session, where the
	// proxy opens the client's ends of side streams.
	clientSession *yamux.Session
	// pipes are the side streams in flight.
	pipes pipeGroup

	// closing is set when the link starts closing: the proxy closing the
	// connections then is no loss of either side's.
	closing atomic.Bool

	// mu guards inflight and closed.
	mu sync.Mutex
	// inflight are the forward calls in flight, in the order they started.
	inflight []*Call
	closed   bool
}

// lost records that side's connection failed or closed. Connections that
// fail because the link is closing them are not counted.
func (l *link) lost(side Side) {
	if l.closing.Load() {
		return
	}
	l.losses[side].Add(1)
}

// lossCount is how often side's connection failed or closed so far.
func (l *link) lossCount(side Side) uint64 { return l.losses[side].Load() }

// newCall starts the record of a call on the link.
func (l *link) newCall(dir calls.Direction, method string, md metadata.MD) *Call {
	c := &Call{ID: l.p.newID(), Dir: dir, Conn: l.info, Method: method, Metadata: md, Start: time.Now()}
	if dir == calls.Reverse {
		c.Cause = l.cause()
	}
	return c
}

// forwardStarted and forwardEnded track the forward calls in flight, so
// that reverse calls and side streams name the call that caused them.
func (l *link) forwardStarted(c *Call) {
	l.mu.Lock()
	l.inflight = append(l.inflight, c)
	l.mu.Unlock()
}

func (l *link) forwardEnded(c *Call) {
	l.mu.Lock()
	if i := slices.Index(l.inflight, c); i >= 0 {
		l.inflight = slices.Delete(l.inflight, i, i+1)
	}
	l.mu.Unlock()
}

// cause returns the ID of the forward call in flight that started last,
// or 0 when none is in flight.
func (l *link) cause() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := len(l.inflight); n > 0 {
		return l.inflight[n-1].ID
	}
	return 0
}

// sideStreamCause returns the ID of the forward call in flight that a side
// stream belongs to: the one whose gitaly-sidechannel-id (the last value,
// as Gitaly reads it) is the stream's, or else the one that started last.
func (l *link) sideStreamCause(s *SideStream) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s.HasChannelID {
		for i := len(l.inflight) - 1; i >= 0; i-- {
			ids := l.inflight[i].Metadata.Get(sidechannelIDKey)
			if len(ids) > 0 && ids[len(ids)-1] == strconv.FormatInt(s.ChannelID, 10) {
				return l.inflight[i].ID
			}
		}
	}
	if n := len(l.inflight); n > 0 {
		return l.inflight[n-1].ID
	}
	return 0
}

// sidechannelIDKey is the metadata key of Gitaly's sidechannel ID.
const sidechannelIDKey = "gitaly-sidechannel-id"

// openClientStream opens a stream to a multiplexed client, for the
// client's end of a side stream.
func (l *link) openClientStream() (net.Conn, error) {
	if l.clientSession == nil {
		return nil, errors.New("the client is not multiplexed")
	}
	return l.clientSession.Open()
}

// close ends the link once the client's connection has closed: the
// upstream connection goes with it (and with it the backchannel server the
// upstream connection ran), so the upstream sees its peer leave as the
// proxy saw the client leave.
func (l *link) close() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	l.mu.Unlock()
	l.closing.Store(true)

	by := SideClient
	if l.p.stopping.Load() {
		by = SideProxy
	}
	if err := l.upstream.Close(); err != nil {
		l.p.log.Debug("proxy: close upstream connection", "conn", l.info.ID, "err", err)
	}
	// Both connections are closed, so the side streams end now.
	l.pipes.closeAndWait()
	l.p.linkClosed(l, by)
}
