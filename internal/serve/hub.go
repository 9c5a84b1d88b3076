package serve

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/journal"
)

// Hub is the live registry and the journal of a bcctl process that
// multiplexed peers connect to: bcctl serve's (a Server is a Hub and a
// gRPC server that answers with a script), and bcctl proxy's (whose peers
// are the clients it relays for). The admin API and the TUI read it; it
// follows a backchannel.Registry, lists each peer's backchannel services
// by reflection, makes reverse calls on demand (CallPeer), and numbers,
// keeps and streams every finished call.
type Hub struct {
	cfg    HubConfig
	log    *slog.Logger
	reg    *backchannel.Registry
	peers  *peerTable
	events *eventLog
	ids    journalIDs
	// order is held while an event is numbered and handed to the journal
	// sink and the subscribers, so that they get events in the order of
	// their IDs (but for IDs given ahead: NextID, and causes that are
	// still running).
	order   sync.Mutex
	journal *journalQueue // nil without a journal sink
	// renderForward and renderReverse render the entries of each
	// direction's calls with its schema.
	renderForward, renderReverse *journal.Renderer

	ctx     context.Context // ends at Close: background work stops
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	discSem chan struct{}

	closeOnce     sync.Once
	started       time.Time
	forward       atomic.Uint64 // forward calls recorded, but those cut short
	reverse       atomic.Uint64 // reverse calls recorded
	cut           atomic.Uint64 // forward calls cut short by the stop
	journalErrors atomic.Uint64
	plainClients  atomic.Int64 // plain gRPC clients connected
}

// HubConfig configures a Hub. Registry is required.
type HubConfig struct {
	// Registry holds the peers' backchannels.
	Registry *backchannel.Registry
	// Schema holds the services of the forward calls (it resolves the
	// types inside Any in their messages); nil means none.
	Schema dynamic.Source
	// PeerSchema holds the services peers offer on their backchannels:
	// CallPeer's methods, and the types of reverse calls. Nil means
	// Schema. CallPeer also asks a peer's own reflection.
	PeerSchema dynamic.Source
	// Logger receives what the hub reports (journal write errors, failed
	// on_connect steps); nil discards.
	Logger *slog.Logger
	// Journal receives every event; nil keeps them only in memory.
	Journal JournalSink
	// JournalBacklog is how many recent events are kept for subscribers
	// that ask for the past (default 10000; negative keeps none).
	JournalBacklog int
	// Bytes says how the events' journal entries (and so the journal sink,
	// the admin API and the TUI) show bytes fields: "" is base64, as
	// protobuf JSON writes them; dynamic.BytesText shows UTF-8 bytes as
	// text.
	Bytes dynamic.BytesMode
	// NoDiscovery turns off listing each peer's backchannel services by
	// reflection when it connects.
	NoDiscovery bool
	// DiscoveryTimeout bounds the reflection request of one peer (default
	// 10s).
	DiscoveryTimeout time.Duration
	// Count counts the calls CallPeer makes, for a script's expectations;
	// nil counts nothing.
	Count func(calls.Record)
	// OnConnect, when set, runs for every peer that joins, in a goroutine
	// of the hub's, with a context that ends at Close (bcctl serve's
	// on_connect steps). Its error is kept as the peer's OnConnectError.
	OnConnect func(ctx context.Context, peer calls.Peer) error
}

// NewHub returns a Hub following cfg.Registry. Close it when done.
func NewHub(cfg HubConfig) (*Hub, error) {
	if cfg.Registry == nil {
		return nil, errors.New("serve: hub: Registry is required")
	}
	if cfg.Schema == nil {
		empty, err := dynamic.NewSourceFromFiles()
		if err != nil {
			return nil, err
		}
		cfg.Schema = empty
	}
	if cfg.PeerSchema == nil {
		cfg.PeerSchema = cfg.Schema
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case cfg.JournalBacklog == 0:
		cfg.JournalBacklog = defaultJournalBacklog
	case cfg.JournalBacklog < 0:
		cfg.JournalBacklog = 0
	}
	if cfg.DiscoveryTimeout <= 0 {
		cfg.DiscoveryTimeout = defaultDiscoveryTimeout
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &Hub{
		cfg:     cfg,
		log:     cfg.Logger,
		reg:     cfg.Registry,
		events:  newEventLog(cfg.JournalBacklog),
		ctx:     ctx,
		cancel:  cancel,
		discSem: make(chan struct{}, discoveryConcurrency),
		started: time.Now(),
	}
	h.renderForward = journal.NewRenderer(journal.Rendering{Resolver: cfg.Schema.Types(), Bytes: cfg.Bytes})
	h.renderReverse = journal.NewRenderer(journal.Rendering{Resolver: cfg.PeerSchema.Types(), Bytes: cfg.Bytes})
	if cfg.Journal != nil {
		h.journal = newJournalQueue(cfg.Journal, h.journalFailed)
	}
	h.peers = newPeerTable(h.reg)
	h.peers.onJoin = h.peerJoined
	if !cfg.NoDiscovery {
		h.peers.initial = DiscoveryPending
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		h.peers.follow(ctx)
	}()
	return h, nil
}

// Registry is the backchannel registry of the peers.
func (h *Hub) Registry() *backchannel.Registry { return h.reg }

// PeerSchema is the schema assumed for peers' backchannels.
func (h *Hub) PeerSchema() dynamic.Source { return h.cfg.PeerSchema }

// Bytes is how the journal's entries show bytes fields (HubConfig.Bytes).
func (h *Hub) Bytes() dynamic.BytesMode { return h.cfg.Bytes }

// Peers returns the live registry, ordered by peer ID.
func (h *Hub) Peers() []PeerView { return h.peers.list() }

// Peer returns what the hub knows of peer id.
func (h *Hub) Peer(id backchannel.ID) (PeerView, bool) { return h.peers.get(id) }

// WatchPeers returns the live registry and a channel that receives every
// later change, in order, until ctx ends or the hub closes; then the
// channel is closed. The snapshot and the changes fit together: none is
// missed or repeated. A slow reader never blocks the hub.
func (h *Hub) WatchPeers(ctx context.Context) ([]PeerView, <-chan PeerChange) {
	ctx, cancel := mergeContext(ctx, h.ctx)
	return h.peers.watch(ctx, cancel)
}

// Subscribe streams journal events as opts say, until ctx ends or the hub
// closes.
func (h *Hub) Subscribe(ctx context.Context, opts SubscribeOptions) *Subscription {
	return h.events.subscribe(ctx, opts)
}

// Stats returns the hub's counters (RejectedConnections is the owner's).
func (h *Hub) Stats() Stats {
	return Stats{
		Started:       h.started,
		Peers:         h.reg.Len(),
		PlainClients:  int(h.plainClients.Load()),
		ForwardCalls:  h.forward.Load(),
		CutCalls:      h.cut.Load(),
		ReverseCalls:  h.reverse.Load(),
		JournalErrors: h.journalErrors.Load(),
	}
}

// PlainClientJoined counts a plain gRPC client that connected to the hub's
// owner (serve's, or the proxy's, listener): it has no backchannel, so it
// is not a peer, and Stats says only how many there are.
func (h *Hub) PlainClientJoined() { h.plainClients.Add(1) }

// PlainClientLeft counts a plain gRPC client that left.
func (h *Hub) PlainClientLeft() { h.plainClients.Add(-1) }

// NextID reserves the next journal ID, for an event recorded later with
// Add (bcctl proxy numbers a call when it starts, so that the calls it
// causes can name it).
func (h *Hub) NextID() uint64 { return h.ids.next() }

// Add records an event whose IDs were reserved with NextID: it counts it,
// queues it for the journal sink (waiting for room while the queue is
// full) and hands it to the subscribers, before it returns.
func (h *Hub) Add(ev *Event) { h.add(ev) }

// stop ends the hub's background work (discovery, on_connect) without
// waiting for it.
func (h *Hub) stop() { h.cancel() }

// Close stops the hub's background work and waits for it, ends the journal
// subscriptions once they have delivered what they have queued, and
// returns once every event recorded so far is in the journal sink. Events
// recorded after Close still reach the journal sink.
func (h *Hub) Close() {
	h.closeOnce.Do(func() {
		h.cancel()
		h.wg.Wait()
		h.events.close()
		if h.journal != nil {
			h.journal.close()
		}
	})
}

// peerJoined starts what the hub does for every new peer: the OnConnect
// hook, and the listing of its backchannel services.
func (h *Hub) peerJoined(p *peerState) {
	id := p.info.ID
	peer := calls.Peer{Addr: addrString(p.info.RemoteAddr), BackchannelID: uint64(id)}
	if h.ctx.Err() != nil {
		return
	}
	if h.cfg.OnConnect != nil {
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			if err := h.cfg.OnConnect(h.ctx, peer); err != nil {
				h.log.Warn("serve: on_connect failed", "peer", uint64(id), "remote", peer.Addr, "err", err)
				h.peers.update(id, func(p *peerState) { p.onConErr = err.Error() })
			}
		}()
	}
	if h.cfg.NoDiscovery {
		return
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		h.discover(id)
	}()
}
