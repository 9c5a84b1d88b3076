package backchannel

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
)

// PeerInfo describes one live multiplexed peer.
type PeerInfo struct {
	// ID is the peer's backchannel ID.
	ID ID
	// RemoteAddr is the address of the peer's connection; nil when the
	// backchannel was registered without one (RegisterBackchannel).
	RemoteAddr net.Addr
	// ConnectedAt is when the peer joined: when its forward gRPC
	// transport started (its HTTP/2 preface arrived).
	ConnectedAt time.Time
}

// PeerEventKind tells whether a peer joined or left.
type PeerEventKind int

const (
	// PeerJoined means the peer completed the handshake, its forward gRPC
	// transport started (its HTTP/2 preface arrived), and its backchannel
	// is in the registry.
	PeerJoined PeerEventKind = iota + 1
	// PeerLeft means the peer's connection closed and its backchannel
	// left the registry.
	PeerLeft
)

// String returns "joined" or "left".
func (k PeerEventKind) String() string {
	switch k {
	case PeerJoined:
		return "joined"
	case PeerLeft:
		return "left"
	default:
		return fmt.Sprintf("PeerEventKind(%d)", int(k))
	}
}

// PeerEvent is one change of the registry's peers.
type PeerEvent struct {
	Kind PeerEventKind
	Peer PeerInfo
	// At is when the change happened.
	At time.Time
}

// Registry holds the backchannels of a server's multiplexed peers by ID. It
// is safe for concurrent use; lookups take a read lock and a map access.
type Registry struct {
	mu       sync.RWMutex
	lastID   ID
	peers    map[ID]registered
	watchers map[*watcher]struct{}
}

type registered struct {
	backchannel *lazyConn
	info        PeerInfo
}

// lazyConn is a peer's backchannel connection, created on first use.
type lazyConn struct {
	mu     sync.Mutex
	conn   *grpc.ClientConn
	create func() (*grpc.ClientConn, error) // nil when conn was registered ready-made
	closed bool
}

func (l *lazyConn) get(id ID) (*grpc.ClientConn, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.closed:
		return nil, fmt.Errorf("backchannel: backchannel of peer %d is closed", id)
	case l.conn == nil:
		conn, err := l.create()
		if err != nil {
			return nil, err
		}
		l.conn = conn
	}
	return l.conn, nil
}

// close closes the connection if this lazyConn created it.
func (l *lazyConn) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.conn == nil || l.create == nil {
		return nil
	}
	return l.conn.Close()
}

// NewRegistry returns an empty Registry.
func NewRegistry() *Registry {
	return &Registry{
		peers:    make(map[ID]registered),
		watchers: make(map[*watcher]struct{}),
	}
}

// Backchannel returns the connection to the backchannel of peer id, or an
// error when no such peer is registered (it never was, or it has left).
func (r *Registry) Backchannel(id ID) (*grpc.ClientConn, error) {
	r.mu.RLock()
	p, ok := r.peers[id]
	r.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("backchannel: no backchannel for peer %d", id)
	}
	return p.backchannel.get(id)
}

// RegisterBackchannel registers conn under a new ID and returns the ID.
// The registry does not close conn.
func (r *Registry) RegisterBackchannel(conn *grpc.ClientConn) ID {
	id := r.reserve()
	r.add(id, &lazyConn{conn: conn}, nil)
	return id
}

// reserve returns a new ID without registering a peer under it: the
// handshake needs the ID before the peer joins.
func (r *Registry) reserve() ID {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lastID++
	return r.lastID
}

// add registers backchannel under id, which reserve returned, and tells
// the watchers.
func (r *Registry) add(id ID, backchannel *lazyConn, remote net.Addr) {
	r.mu.Lock()
	defer r.mu.Unlock()

	info := PeerInfo{ID: id, RemoteAddr: remote, ConnectedAt: time.Now()}
	r.peers[id] = registered{backchannel: backchannel, info: info}
	r.notifyLocked(PeerEvent{Kind: PeerJoined, Peer: info, At: info.ConnectedAt})
}

// RemoveBackchannel removes peer id. Removing an unknown ID does nothing.
// It does not close the connection.
func (r *Registry) RemoveBackchannel(id ID) {
	r.mu.Lock()
	defer r.mu.Unlock()

	p, ok := r.peers[id]
	if !ok {
		return
	}
	delete(r.peers, id)
	r.notifyLocked(PeerEvent{Kind: PeerLeft, Peer: p.info, At: time.Now()})
}

// Peer returns what the registry knows of peer id.
func (r *Registry) Peer(id ID) (PeerInfo, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	p, ok := r.peers[id]
	return p.info, ok
}

// Peers returns a snapshot of the live peers, ordered by ID.
func (r *Registry) Peers() []PeerInfo {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.peersLocked()
}

func (r *Registry) peersLocked() []PeerInfo {
	peers := make([]PeerInfo, 0, len(r.peers))
	for _, p := range r.peers {
		peers = append(peers, p.info)
	}
	slices.SortFunc(peers, func(a, b PeerInfo) int { return cmp.Compare(a.ID, b.ID) })
	return peers
}

// Len returns the number of live peers.
func (r *Registry) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.peers)
}

// Watch returns the live peers and a channel that receives every later
// join and leave, in order, until ctx is done; then the channel is closed.
// The snapshot and the events fit together: no change is missed or
// repeated. A slow reader never blocks the registry; events queue for it.
func (r *Registry) Watch(ctx context.Context) ([]PeerInfo, <-chan PeerEvent) {
	w := &watcher{
		out:    make(chan PeerEvent),
		wake:   make(chan struct{}, 1),
		ctx:    ctx,
		remove: func(w *watcher) { r.mu.Lock(); delete(r.watchers, w); r.mu.Unlock() },
	}

	r.mu.Lock()
	snapshot := r.peersLocked()
	r.watchers[w] = struct{}{}
	r.mu.Unlock()

	go w.run()
	return snapshot, w.out
}

func (r *Registry) notifyLocked(ev PeerEvent) {
	for w := range r.watchers {
		w.push(ev)
	}
}

// watcher queues events for one Watch caller without blocking the registry.
// It is a private copy of the design of bcctl's internal/fanout (a queue
// per consumer, a wake token, one goroutine that pumps the queue into an
// unbuffered channel), because this public package imports nothing from
// internal/.
type watcher struct {
	ctx    context.Context
	out    chan PeerEvent
	wake   chan struct{}
	remove func(*watcher)

	mu    sync.Mutex
	queue []PeerEvent
}

func (w *watcher) push(ev PeerEvent) {
	w.mu.Lock()
	w.queue = append(w.queue, ev)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *watcher) run() {
	defer close(w.out)
	defer w.remove(w)
	for {
		w.mu.Lock()
		pending := w.queue
		w.queue = nil
		w.mu.Unlock()

		for _, ev := range pending {
			select {
			case w.out <- ev:
			case <-w.ctx.Done():
				return
			}
		}

		select {
		case <-w.wake:
		case <-w.ctx.Done():
			return
		}
	}
}
