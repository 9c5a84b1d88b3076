package tui

import (
	"context"
	"testing"
	"time"

	"github.com/bcctl/bcctl/internal/journal"
	"github.com/bcctl/bcctl/internal/tui/answer"
	"github.com/bcctl/bcctl/internal/tui/internal/tuitest"
	"github.com/bcctl/bcctl/internal/tui/registry"
)

func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v, ok := <-ch:
		if !ok {
			t.Fatal("channel closed")
		}
		return v
	case <-time.After(20 * time.Second):
		t.Fatal("nothing received within 20s")
	}
	var zero T
	return zero
}

func TestJournalFeed(t *testing.T) {
	feed := NewJournalFeed()
	feed.Add(journal.Entry{ID: 1})
	ctx, cancel := context.WithCancel(context.Background())
	snap, ch := feed.WatchJournal(ctx)
	if len(snap) != 1 || snap[0].ID != 1 {
		t.Fatalf("snapshot %v, want entry 1", snap)
	}
	// Add never waits for a slow watcher, and nothing is lost or reordered.
	for id := uint64(2); id <= 200; id++ {
		feed.Add(journal.Entry{ID: id})
	}
	for want := uint64(2); want <= 200; want++ {
		if got := recv(t, ch).ID; got != want {
			t.Fatalf("got entry %d, want %d", got, want)
		}
	}
	late, _ := feed.WatchJournal(ctx)
	if len(late) != 200 {
		t.Errorf("a late watcher sees %d entries, want 200", len(late))
	}
	cancel()
	for range ch { // closed once ctx is done
	}
	feed.Add(journal.Entry{ID: 201}) // no watcher left to block on
}

func TestRegistryPeers(t *testing.T) {
	upstream := tuitest.StartUpstream(t, "", nil)
	ctx, cancel := context.WithCancel(tuitest.Context(t))
	defer cancel()
	snap, events := RegistryPeers(upstream.Registry).WatchPeers(ctx)
	if len(snap) != 0 {
		t.Fatalf("snapshot %v, want no peers", snap)
	}
	r := answer.NewResponder(answer.Options{})
	defer r.Close()
	cc := tuitest.Dial(t, upstream.Addr, r)
	ev := recv(t, events)
	if ev.Kind != registry.Joined || ev.Peer.ID == 0 || ev.Peer.Addr == "" || ev.Peer.ConnectedAt.IsZero() {
		t.Errorf("join event %+v", ev)
	}
	_ = cc.Close()
	if left := recv(t, events); left.Kind != registry.Left || left.Peer.ID != ev.Peer.ID {
		t.Errorf("leave event %+v, want peer %d leaving", left, ev.Peer.ID)
	}
	cancel()
	for range events {
	}
}
