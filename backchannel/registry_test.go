package backchannel_test

import (
	"context"
	"sync"
	"testing"

	"github.com/bcctl/bcctl/backchannel"
	"google.golang.org/grpc"
)

func TestRegistry(t *testing.T) {
	reg := backchannel.NewRegistry()
	ctx, cancel := context.WithCancel(testContext(t))
	snapshot, events := reg.Watch(ctx)
	if len(snapshot) != 0 {
		t.Fatalf("snapshot of an empty registry = %v", snapshot)
	}

	conn := newIdleConn(t)
	id1 := reg.RegisterBackchannel(conn)
	id2 := reg.RegisterBackchannel(conn)
	if id1 != 1 || id2 != 2 {
		t.Fatalf("IDs = %d, %d; want 1, 2", id1, id2)
	}
	if got, err := reg.Backchannel(id2); err != nil || got != conn {
		t.Fatalf("Backchannel(%d) = %v, %v; want the registered conn", id2, got, err)
	}
	reg.RemoveBackchannel(id1)
	reg.RemoveBackchannel(id1) // a second removal does nothing
	if _, err := reg.Backchannel(id1); err == nil {
		t.Fatalf("Backchannel(%d) after removal succeeded", id1)
	}
	if id3 := reg.RegisterBackchannel(conn); id3 != 3 {
		t.Fatalf("ID after a removal = %d, want 3 (IDs are never reused)", id3)
	}

	want := []struct {
		kind backchannel.PeerEventKind
		id   backchannel.ID
	}{{backchannel.PeerJoined, 1}, {backchannel.PeerJoined, 2}, {backchannel.PeerLeft, 1}, {backchannel.PeerJoined, 3}}
	for _, w := range want {
		ev := waitForEvent(t, ctx, events, w.kind)
		if ev.Peer.ID != w.id {
			t.Errorf("%v event for peer %d, want %d", w.kind, ev.Peer.ID, w.id)
		}
	}

	peers := reg.Peers()
	if len(peers) != 2 || peers[0].ID != 2 || peers[1].ID != 3 {
		t.Errorf("Peers() = %+v, want peers 2 and 3 in order", peers)
	}
	if info, ok := reg.Peer(3); !ok || info.ConnectedAt.IsZero() {
		t.Errorf("Peer(3) = %+v, %v; want a peer with a connection time", info, ok)
	}

	cancel()
	for range events {
	}
}

// TestRegistryWatchSeesEveryChange registers and removes concurrently with
// several watchers, one of them not reading until the end: each watcher's
// snapshot plus its events add up to the final state.
func TestRegistryWatchSeesEveryChange(t *testing.T) {
	reg := backchannel.NewRegistry()
	conn := newIdleConn(t)
	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()

	const writers, perWriter = 8, 50
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range writers {
		wg.Go(func() {
			<-start
			for range perWriter {
				id := reg.RegisterBackchannel(conn)
				if id%3 == 0 {
					reg.RemoveBackchannel(id)
				}
			}
		})
	}

	type view struct {
		live   map[backchannel.ID]bool
		events <-chan backchannel.PeerEvent
	}
	var views []view
	for range 3 {
		snapshot, events := reg.Watch(ctx)
		v := view{live: map[backchannel.ID]bool{}, events: events}
		for _, p := range snapshot {
			v.live[p.ID] = true
		}
		views = append(views, v)
		if len(views) == 1 {
			close(start)
		}
	}
	wg.Wait()
	// The final registration is a sentinel: once a watcher has seen it, it
	// has seen every change before it.
	sentinel := reg.RegisterBackchannel(conn)
	final := reg.Peers()

	for i, v := range views {
		for {
			ev := <-v.events
			switch ev.Kind {
			case backchannel.PeerJoined:
				v.live[ev.Peer.ID] = true
			case backchannel.PeerLeft:
				delete(v.live, ev.Peer.ID)
			}
			if ev.Kind == backchannel.PeerJoined && ev.Peer.ID == sentinel {
				break
			}
		}
		if len(v.live) != len(final) {
			t.Errorf("watcher %d sees %d live peers, registry has %d", i, len(v.live), len(final))
		}
		for _, p := range final {
			if !v.live[p.ID] {
				t.Errorf("watcher %d misses peer %d", i, p.ID)
			}
		}
	}
}

// newIdleConn returns a ClientConn that never connects (NewClient is lazy).
func newIdleConn(t *testing.T) *grpc.ClientConn {
	cc, err := grpc.NewClient("passthrough:///127.0.0.1:1", grpc.WithTransportCredentials(insecureCreds()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}
