package tui

import (
	"context"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/journal"
	"github.com/bcctl/bcctl/internal/serve"
	"github.com/bcctl/bcctl/internal/tui/registry"
)

// ServeEngine returns the serve program's view of a running bcctl serve
// or bcctl proxy (their serve.Hub): its live registry, its journal and its
// reverse calls (journaled as made by the TUI), over the schema it assumes
// for peers' backchannels.
func ServeEngine(srv *serve.Hub) ServeConfig {
	return ServeConfig{
		Peers:   servePeers{srv},
		Journal: serveJournal{srv},
		Caller:  serveCaller{srv},
		Schema:  srv.PeerSchema(),
		Bytes:   srv.Bytes(),
	}
}

// counterRefresh is how often the peer table reads the call counters,
// which serve does not report one change at a time.
const counterRefresh = time.Second

type servePeers struct{ srv *serve.Hub }

func (p servePeers) WatchPeers(ctx context.Context) ([]registry.Peer, <-chan registry.Event) {
	snap, changes := p.srv.WatchPeers(ctx)
	known := map[uint64]registry.Peer{}
	peers := make([]registry.Peer, len(snap))
	for i, v := range snap {
		peers[i] = peerView(v)
		known[peers[i].ID] = peers[i]
	}
	out := make(chan registry.Event)
	go func() {
		defer close(out)
		tick := time.NewTicker(counterRefresh)
		defer tick.Stop()
		send := func(ev registry.Event) bool {
			select {
			case out <- ev:
				return true
			case <-ctx.Done():
				return false
			}
		}
		for {
			select {
			case ch, ok := <-changes:
				if !ok {
					return
				}
				peer := peerView(ch.Peer)
				kind := registry.Updated
				switch ch.Kind {
				case serve.PeerJoined:
					kind = registry.Joined
					known[peer.ID] = peer
				case serve.PeerLeft:
					kind = registry.Left
					delete(known, peer.ID)
				default:
					known[peer.ID] = peer
				}
				if !send(registry.Event{Kind: kind, Peer: peer}) {
					return
				}
			case <-tick.C:
				for _, v := range p.srv.Peers() {
					peer := peerView(v)
					old, ok := known[peer.ID]
					if !ok || samePeer(old, peer) {
						continue // joins come as changes
					}
					known[peer.ID] = peer
					if !send(registry.Event{Kind: registry.Updated, Peer: peer}) {
						return
					}
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return peers, out
}

func peerView(v serve.PeerView) registry.Peer {
	p := registry.Peer{
		ID: uint64(v.ID), Addr: v.RemoteAddr, ConnectedAt: v.ConnectedAt,
		ForwardCalls: int(v.ForwardCalls), ReverseCalls: int(v.ReverseCalls),
	}
	if v.LastCall != nil {
		p.LastCall = v.LastCall.At
	}
	if v.Services != nil || v.Discovery == serve.DiscoveryDone {
		p.Services = append([]string{}, v.Services...)
	}
	return p
}

func samePeer(a, b registry.Peer) bool {
	return a.ForwardCalls == b.ForwardCalls && a.ReverseCalls == b.ReverseCalls &&
		a.LastCall.Equal(b.LastCall) && slices.Equal(a.Services, b.Services) && (a.Services == nil) == (b.Services == nil)
}

type serveJournal struct{ srv *serve.Hub }

func (j serveJournal) WatchJournal(ctx context.Context) ([]journal.Entry, <-chan journal.Entry) {
	sub := j.srv.Subscribe(ctx, serve.SubscribeOptions{Backlog: true, Follow: true})
	out := make(chan journal.Entry)
	go func() {
		defer close(out)
		for ev := range sub.C {
			select {
			case out <- ev.Entry():
			case <-ctx.Done():
				return
			}
		}
	}()
	return nil, out
}

type serveCaller struct{ srv *serve.Hub }

// ReverseCall makes the call with serve's CallPeer, which journals it as
// made by the TUI: requests are taken from requests while the call runs
// (a stream goes message by message), and h hears of each response as it
// arrives. The call is bounded by ctx alone.
func (c serveCaller) ReverseCall(ctx context.Context, peer uint64, md protoreflect.MethodDescriptor, headers metadata.MD,
	h dynamic.InvocationEventHandler, requests dynamic.RequestSupplier) error {
	_, err := c.srv.CallPeer(ctx, serve.PeerCall{
		Peer: backchannel.ID(peer), Method: dynamic.MethodName(md), Metadata: headers, By: serve.ByTUI,
		Timeout: -1, Requests: acrossDescriptors(md, requests), Events: h,
	})
	return err
}

// PeerMethods lists the methods of the services peer reported by
// reflection over its backchannel (serve's discovery), resolved by the
// peer's own reflection first, then serve's peer schema.
func (c serveCaller) PeerMethods(ctx context.Context, peer uint64) ([]protoreflect.MethodDescriptor, error) {
	v, ok := c.srv.Peer(backchannel.ID(peer))
	if !ok || len(v.Services) == 0 {
		return nil, nil
	}
	src, err := c.srv.PeerSource(ctx, backchannel.ID(peer))
	if err != nil {
		return nil, err
	}
	defer src.Close()
	return servicesMethods(ctx, src, v.Services), nil
}

// servicesMethods returns the methods of the named services in src,
// leaving out reflection and the services it cannot find.
func servicesMethods(ctx context.Context, src dynamic.Source, services []string) []protoreflect.MethodDescriptor {
	var out []protoreflect.MethodDescriptor
	for _, name := range services {
		if strings.HasPrefix(name, "grpc.reflection.") {
			continue
		}
		d, err := src.FindSymbol(ctx, name)
		if err != nil {
			continue
		}
		if sd, ok := d.(protoreflect.ServiceDescriptor); ok {
			for i := range sd.Methods().Len() {
				out = append(out, sd.Methods().Get(i))
			}
		}
	}
	return out
}

// acrossDescriptors adapts requests, which fills messages of md's input,
// to a caller that resolved the method on its own: its messages may be
// built from another descriptor of the same type, so they are filled
// through the wire format.
func acrossDescriptors(md protoreflect.MethodDescriptor, requests dynamic.RequestSupplier) dynamic.RequestSupplier {
	return func(msg proto.Message) error {
		if msg.ProtoReflect().Descriptor() == md.Input() {
			return requests(msg)
		}
		mine := dynamicpb.NewMessage(md.Input())
		if err := requests(mine); err != nil {
			return err
		}
		b, err := proto.Marshal(mine)
		if err != nil {
			return err
		}
		return proto.Unmarshal(b, msg)
	}
}
