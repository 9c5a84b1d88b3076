package serve

import (
	"context"
	"encoding/binary"
	"net"
	"runtime"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/bcctl/bcctl/backchannel"
)

// What one peer that never answers its backchannel may cost serve while it
// is connected: yamux's two loops, gRPC's server transport (reader, writer,
// keepalive), the discovery waiting for it, the dial-back connection that
// is trying to reach it.
const stalledPeerGoroutines = 16

// TestDiscoveryIsNotStarvedByPeersThatNeverAnswer connects more peers
// than there are discovery slots that start their forward transport and
// then never answer anything, plus clients that stop before their HTTP/2
// preface, and then a real peer: the silent clients are never listed, and
// the real peer's services are discovered while every stalled peer's
// discovery is still waiting. Goroutines stay within a bound per stalled
// peer and return to the baseline when they leave.
func TestDiscoveryIsNotStarvedByPeersThatNeverAnswer(t *testing.T) {
	ctx := testContext(t)
	srv, addr, _ := startServe(t, voteScript, func(c *Config) {
		c.DiscoveryTimeout = time.Hour // only the test's end ends the stalled discoveries
	})
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	_, changes := srv.WatchPeers(watchCtx)
	runtime.GC()
	baseGoroutines, baseline := runtime.NumGoroutine(), goleak.IgnoreCurrent()

	stalled := 2 * discoveryConcurrency
	var conns []net.Conn
	for range stalled {
		conns = append(conns, rawPeer(t, addr, true))
	}
	for range 4 {
		conns = append(conns, rawPeer(t, addr, false))
	}
	stalledIDs := map[backchannel.ID]bool{}
	for len(stalledIDs) < stalled {
		c := nextChange(t, ctx, changes)
		if c.Kind != PeerJoined {
			t.Fatalf("%v of peer %d while the stalled peers join", c.Kind, c.Peer.ID)
		}
		stalledIDs[c.Peer.ID] = true
	}

	realConn := dialPeer(t, addr, peerOptions{})
	var real PeerView
	for real.Discovery != DiscoveryDone {
		c := nextChange(t, ctx, changes)
		switch {
		case stalledIDs[c.Peer.ID]:
			t.Fatalf("stalled peer %d: %v, discovery %s (%s) before the real peer's", c.Peer.ID, c.Kind, c.Peer.Discovery, c.Peer.DiscoveryError)
		case c.Kind == PeerJoined:
			real = c.Peer
		case c.Kind == PeerUpdated:
			real = c.Peer
			if real.Discovery != DiscoveryDone && real.Discovery != DiscoveryPending {
				t.Fatalf("real peer's discovery: %s %s", real.Discovery, real.DiscoveryError)
			}
		}
	}
	peers := srv.Peers()
	if len(peers) != stalled+1 {
		t.Errorf("serve lists %d peers, want the %d stalled ones and the real one (not the 4 silent clients)", len(peers), stalled)
	}
	for _, p := range peers {
		if stalledIDs[p.ID] && p.Discovery != DiscoveryPending {
			t.Errorf("stalled peer %d: discovery %s, want pending", p.ID, p.Discovery)
		}
	}
	during := runtime.NumGoroutine() - baseGoroutines
	t.Logf("%d stalled peers, 4 silent clients and 1 real peer: %+d goroutines", stalled, during)
	if bound := (stalled + 4 + 1) * stalledPeerGoroutines; during > bound {
		t.Errorf("%d goroutines more than before, bound %d", during, bound)
	}

	for _, c := range conns {
		c.Close()
	}
	realConn.Close()
	for left := 0; left < stalled+1; {
		if c := nextChange(t, ctx, changes); c.Kind == PeerLeft {
			left++
		}
	}
	stopWatch()
	if err := goleak.Find(baseline); err != nil {
		t.Errorf("goroutines left after every peer left: %v", err)
	}
}

// rawPeer connects to addr as a multiplexed client without gRPC: the magic
// and stream 1, and with started the HTTP/2 preface and an empty SETTINGS
// frame on it, so that serve's gRPC transport for it starts. It then
// neither reads nor answers.
func rawPeer(t *testing.T, addr string, started bool) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	b := []byte("backchannel")
	b = yamuxHeader(b, 1, 1, 1, 0) // window update, SYN, stream 1
	if started {
		h2 := append([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 0, 0, 0, 4, 0, 0, 0, 0, 0)
		b = yamuxHeader(b, 0, 0, 1, uint32(len(h2)))
		b = append(b, h2...)
	}
	if _, err := conn.Write(b); err != nil {
		t.Fatal(err)
	}
	return conn
}

// yamuxHeader appends a yamux frame header to b.
func yamuxHeader(b []byte, typ byte, flags uint16, stream, length uint32) []byte {
	var h [12]byte
	h[1] = typ
	binary.BigEndian.PutUint16(h[2:4], flags)
	binary.BigEndian.PutUint32(h[4:8], stream)
	binary.BigEndian.PutUint32(h[8:12], length)
	return append(b, h[:]...)
}

func nextChange(t *testing.T, ctx context.Context, changes <-chan PeerChange) PeerChange {
	t.Helper()
	select {
	case c, ok := <-changes:
		if !ok {
			t.Fatal("peer changes ended")
		}
		return c
	case <-ctx.Done():
		t.Fatalf("waiting for a peer change: %v", ctx.Err())
	}
	return PeerChange{}
}
