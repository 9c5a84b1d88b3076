package tui

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/fanout"
	"github.com/bcctl/bcctl/internal/journal"
	"github.com/bcctl/bcctl/internal/tui/registry"
)

// PeerSource is the live registry of a mock upstream, as the serve
// program reads it.
type PeerSource interface {
	// WatchPeers returns the connected peers and a channel of every later
	// change (joins, leaves, updated counts or services), in order, until
	// ctx is done; then the channel is closed.
	WatchPeers(ctx context.Context) ([]registry.Peer, <-chan registry.Event)
}

// JournalSource is the journal of a mock upstream as it is written.
type JournalSource interface {
	// WatchJournal returns the entries written so far and a channel of
	// every later entry, in journal order, until ctx is done; then the
	// channel is closed.
	WatchJournal(ctx context.Context) ([]journal.Entry, <-chan journal.Entry)
}

// ReverseCaller makes a reverse call into the backchannel of a connected
// peer, reporting what happens to h as dynamic.Invoke does. It is also
// where the serve engine journals the call (origin made, by tui).
type ReverseCaller interface {
	ReverseCall(ctx context.Context, peer uint64, md protoreflect.MethodDescriptor, headers metadata.MD,
		h dynamic.InvocationEventHandler, requests dynamic.RequestSupplier) error
}

// PeerMethods is what a ReverseCaller may also offer: the methods a
// peer's backchannel says it serves (by reflection), listed first in the
// reverse-call screen's picker.
type PeerMethods interface {
	PeerMethods(ctx context.Context, peer uint64) ([]protoreflect.MethodDescriptor, error)
}

// RegistryPeers is a PeerSource over a backchannel.Registry: peers join
// and leave; call counts and services are not known to the registry and
// stay empty.
func RegistryPeers(reg *backchannel.Registry) PeerSource { return registryPeers{reg} }

type registryPeers struct{ reg *backchannel.Registry }

func (r registryPeers) WatchPeers(ctx context.Context) ([]registry.Peer, <-chan registry.Event) {
	snap, events := r.reg.Watch(ctx)
	peers := make([]registry.Peer, len(snap))
	for i, p := range snap {
		peers[i] = peerOf(p)
	}
	out := make(chan registry.Event)
	go func() {
		defer close(out)
		for ev := range events {
			kind := registry.Joined
			if ev.Kind == backchannel.PeerLeft {
				kind = registry.Left
			}
			select {
			case out <- registry.Event{Kind: kind, Peer: peerOf(ev.Peer)}:
			case <-ctx.Done():
				// Drain so the registry's watcher can finish.
				for range events {
				}
				return
			}
		}
	}()
	return peers, out
}

func peerOf(p backchannel.PeerInfo) registry.Peer {
	addr := ""
	if p.RemoteAddr != nil {
		addr = p.RemoteAddr.String()
	}
	return registry.Peer{ID: uint64(p.ID), Addr: addr, ConnectedAt: p.ConnectedAt}
}

// RegistryCaller is a ReverseCaller that invokes methods over the
// backchannel connections of reg (without journaling them).
func RegistryCaller(reg *backchannel.Registry) ReverseCaller { return registryCaller{reg} }

type registryCaller struct{ reg *backchannel.Registry }

func (r registryCaller) ReverseCall(ctx context.Context, peer uint64, md protoreflect.MethodDescriptor, headers metadata.MD,
	h dynamic.InvocationEventHandler, requests dynamic.RequestSupplier) error {
	cc, err := r.reg.Backchannel(backchannel.ID(peer))
	if err != nil {
		return fmt.Errorf("peer %d: %w", peer, err)
	}
	return dynamic.Invoke(ctx, cc, md, headers, h, requests)
}

// PeerMethods asks the peer's backchannel by reflection which services it
// serves.
func (r registryCaller) PeerMethods(ctx context.Context, peer uint64) ([]protoreflect.MethodDescriptor, error) {
	cc, err := r.reg.Backchannel(backchannel.ID(peer))
	if err != nil {
		return nil, fmt.Errorf("peer %d: %w", peer, err)
	}
	src := dynamic.NewSourceFromReflection(ctx, cc, nil)
	defer src.Close()
	names, err := src.ListServices(ctx)
	if err != nil {
		return nil, fmt.Errorf("peer %d: reflection: %w", peer, err)
	}
	services := make([]string, len(names))
	for i, n := range names {
		services[i] = string(n)
	}
	return servicesMethods(ctx, src, services), nil
}

// JournalFeed is a JournalSource fed entry by entry: make its Add the Tap
// of a journal.Writer and every entry written reaches the serve program.
// It keeps every entry, so a watcher that starts late sees them all.
type JournalFeed struct {
	mu      sync.Mutex
	entries []journal.Entry            // guarded by mu
	feed    fanout.Feed[journal.Entry] // published under mu, so snapshots fit
}

// NewJournalFeed returns an empty feed.
func NewJournalFeed() *JournalFeed { return &JournalFeed{} }

// Add records e and queues it for every watcher. It never blocks on a
// watcher.
func (f *JournalFeed) Add(e journal.Entry) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entries = append(f.entries, e)
	f.feed.Publish(e)
}

// WatchJournal implements JournalSource.
func (f *JournalFeed) WatchJournal(ctx context.Context) ([]journal.Entry, <-chan journal.Entry) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sub := f.feed.Subscribe(ctx, fanout.Options[journal.Entry]{})
	return slices.Clone(f.entries), sub.C
}
