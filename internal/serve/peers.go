package serve

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/fanout"
)

// Discovery says what serve knows of the services a peer offers on its
// backchannel.
type Discovery int

const (
	// DiscoveryOff: serve was told not to look (Config.NoDiscovery).
	DiscoveryOff Discovery = iota
	// DiscoveryPending: the reflection request is queued or running.
	DiscoveryPending
	// DiscoveryDone: the peer's reflection listed Services.
	DiscoveryDone
	// DiscoveryNotServed: the peer's backchannel serves no reflection.
	DiscoveryNotServed
	// DiscoveryFailed: reflection failed; DiscoveryError says why.
	DiscoveryFailed
)

// String returns "off", "pending", "done", "not-served" or "failed".
func (d Discovery) String() string {
	switch d {
	case DiscoveryPending:
		return "pending"
	case DiscoveryDone:
		return "done"
	case DiscoveryNotServed:
		return "not-served"
	case DiscoveryFailed:
		return "failed"
	default:
		return "off"
	}
}

// LastCall is the most recent finished call from or into a peer.
type LastCall struct {
	At     time.Time
	Dir    calls.Direction
	Method string
	Code   codes.Code
}

// PeerView is what serve knows of one connected multiplexed peer.
type PeerView struct {
	ID          backchannel.ID
	RemoteAddr  string
	ConnectedAt time.Time
	// ForwardCalls counts the calls the peer made to serve; ReverseCalls
	// the calls serve made into the peer's backchannel (by script, admin
	// or TUI).
	ForwardCalls uint64
	ReverseCalls uint64
	// LastCall is the peer's most recent call either way; nil before the
	// first.
	LastCall *LastCall
	// Services are the services the peer's backchannel offers, found by
	// reflection over the backchannel (when Discovery is DiscoveryDone).
	Services       []string
	Discovery      Discovery
	DiscoveryError string
	// OnConnectError is set when the script's on_connect steps failed for
	// this peer.
	OnConnectError string
}

// PeerChangeKind tells what happened to a peer.
type PeerChangeKind int

const (
	// PeerJoined: the peer completed the handshake.
	PeerJoined PeerChangeKind = iota + 1
	// PeerLeft: the peer's connection closed.
	PeerLeft
	// PeerUpdated: serve learnt more about the peer (its services, the
	// outcome of on_connect). Call counters change too often to be
	// reported one by one: read them from Peers.
	PeerUpdated
)

// String returns "joined", "left" or "updated".
func (k PeerChangeKind) String() string {
	switch k {
	case PeerJoined:
		return "joined"
	case PeerLeft:
		return "left"
	case PeerUpdated:
		return "updated"
	}
	return "unknown"
}

// PeerChange is one change of the live registry.
type PeerChange struct {
	Kind PeerChangeKind
	Peer PeerView
	At   time.Time
}

// peerState is the table's record of one peer. Counters are atomic so
// that the call path takes only the table's read lock.
type peerState struct {
	info     backchannel.PeerInfo
	forward  atomic.Uint64
	reverse  atomic.Uint64
	last     atomic.Pointer[LastCall]
	mu       sync.Mutex // guards the fields below
	services []string
	disc     Discovery
	discErr  string
	onConErr string
}

func (p *peerState) view() PeerView {
	v := PeerView{
		ID:           p.info.ID,
		RemoteAddr:   addrString(p.info.RemoteAddr),
		ConnectedAt:  p.info.ConnectedAt,
		ForwardCalls: p.forward.Load(),
		ReverseCalls: p.reverse.Load(),
	}
	if l := p.last.Load(); l != nil {
		c := *l
		v.LastCall = &c
	}
	p.mu.Lock()
	v.Services = slices.Clone(p.services)
	v.Discovery, v.DiscoveryError, v.OnConnectError = p.disc, p.discErr, p.onConErr
	p.mu.Unlock()
	return v
}

// peerTable is the live registry with per-peer statistics. It follows the
// backchannel.Registry: a peer is in the table while it is in the registry.
type peerTable struct {
	reg *backchannel.Registry

	mu      sync.RWMutex
	peers   map[backchannel.ID]*peerState
	changes fanout.Feed[PeerChange] // published under mu, so snapshots fit
	onJoin  func(*peerState)        // called (without locks) for each new peer
	// initial is the Discovery state of a new peer.
	initial Discovery
}

func newPeerTable(reg *backchannel.Registry) *peerTable {
	return &peerTable{reg: reg, peers: map[backchannel.ID]*peerState{}}
}

// follow keeps the table in step with the registry until ctx is done.
func (t *peerTable) follow(ctx context.Context) {
	snapshot, events := t.reg.Watch(ctx)
	for _, info := range snapshot {
		t.join(info)
	}
	for ev := range events {
		switch ev.Kind {
		case backchannel.PeerJoined:
			t.join(ev.Peer)
		case backchannel.PeerLeft:
			t.leave(ev.Peer.ID, ev.At)
		}
	}
}

// join adds a peer unless it is already there (a call may have added it
// first).
func (t *peerTable) join(info backchannel.PeerInfo) {
	t.mu.Lock()
	if _, ok := t.peers[info.ID]; ok {
		t.mu.Unlock()
		return
	}
	p := t.addLocked(info)
	t.mu.Unlock()
	if t.onJoin != nil {
		t.onJoin(p)
	}
}

func (t *peerTable) addLocked(info backchannel.PeerInfo) *peerState {
	p := &peerState{info: info, disc: t.initial}
	t.peers[info.ID] = p
	t.notifyLocked(PeerChange{Kind: PeerJoined, Peer: p.view(), At: info.ConnectedAt})
	return p
}

func (t *peerTable) leave(id backchannel.ID, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.peers[id]
	if !ok {
		return
	}
	delete(t.peers, id)
	t.notifyLocked(PeerChange{Kind: PeerLeft, Peer: p.view(), At: at})
}

// lookup returns the state of peer id. A peer whose join the table has not
// seen yet but that is in the registry is added now, so that no call is
// left uncounted; a peer that has left is not added back (the registry
// forgets it before the table hears that it left, and both paths hold the
// table's lock).
func (t *peerTable) lookup(id backchannel.ID) *peerState {
	t.mu.RLock()
	p := t.peers[id]
	t.mu.RUnlock()
	if p != nil {
		return p
	}
	t.mu.Lock()
	if p = t.peers[id]; p != nil {
		t.mu.Unlock()
		return p
	}
	info, ok := t.reg.Peer(id)
	if !ok {
		t.mu.Unlock()
		return nil
	}
	p = t.addLocked(info)
	t.mu.Unlock()
	if t.onJoin != nil {
		t.onJoin(p)
	}
	return p
}

// count records a finished call from or into peer id.
func (t *peerTable) count(id backchannel.ID, dir calls.Direction, method string, code codes.Code, at time.Time) {
	p := t.lookup(id)
	if p == nil {
		return
	}
	if dir == calls.Reverse {
		p.reverse.Add(1)
	} else {
		p.forward.Add(1)
	}
	p.last.Store(&LastCall{At: at, Dir: dir, Method: method, Code: code})
}

// update changes what is known of peer id and tells the watchers.
func (t *peerTable) update(id backchannel.ID, change func(p *peerState)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.peers[id]
	if !ok {
		return
	}
	p.mu.Lock()
	change(p)
	p.mu.Unlock()
	t.notifyLocked(PeerChange{Kind: PeerUpdated, Peer: p.view(), At: time.Now()})
}

func (t *peerTable) list() []PeerView {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.listLocked()
}

func (t *peerTable) listLocked() []PeerView {
	out := make([]PeerView, 0, len(t.peers))
	for _, p := range t.peers {
		out = append(out, p.view())
	}
	slices.SortFunc(out, func(a, b PeerView) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

func (t *peerTable) get(id backchannel.ID) (PeerView, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	p, ok := t.peers[id]
	if !ok {
		return PeerView{}, false
	}
	return p.view(), true
}

// watch returns the table and a channel of every later change, in order,
// until ctx is done; done is called when the channel is closed.
func (t *peerTable) watch(ctx context.Context, done func()) ([]PeerView, <-chan PeerChange) {
	t.mu.Lock()
	defer t.mu.Unlock()
	sub := t.changes.Subscribe(ctx, fanout.Options[PeerChange]{OnEnd: done})
	return t.listLocked(), sub.C
}

func (t *peerTable) notifyLocked(c PeerChange) { t.changes.Publish(c) }
