package serve

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/internal/dynamic"
)

// discover lists the services peer id offers by reflection over its
// backchannel, within Config.DiscoveryTimeout. Reflection requests in
// flight are bounded (discoveryConcurrency), but a peer takes one of those
// slots only once its backchannel has answered the HTTP/2 handshake: peers
// that never answer wait outside the pool and cannot hold up the others.
func (h *Hub) discover(id backchannel.ID) {
	conn, err := h.reg.Backchannel(id)
	if err != nil {
		return // it has left
	}
	ctx, cancel := context.WithTimeout(h.ctx, h.cfg.DiscoveryTimeout)
	defer cancel()
	var names []protoreflect.FullName
	err = waitReady(ctx, conn)
	if err == nil {
		names, err = h.listServices(ctx, conn)
	}
	if h.ctx.Err() != nil {
		return
	}
	services := make([]string, 0, len(names))
	for _, n := range names {
		if strings.HasPrefix(string(n), "grpc.reflection.") {
			continue // the means, not the offer
		}
		services = append(services, string(n))
	}
	h.peers.update(id, func(p *peerState) {
		switch {
		case err == nil:
			p.disc, p.services = DiscoveryDone, services
		case errors.Is(err, dynamic.ErrReflectionNotSupported):
			p.disc = DiscoveryNotServed
		default:
			p.disc, p.discErr = DiscoveryFailed, err.Error()
		}
	})
}

// listServices asks conn's reflection service for its services, in one of
// the discovery slots.
func (h *Hub) listServices(ctx context.Context, conn *grpc.ClientConn) ([]protoreflect.FullName, error) {
	select {
	case h.discSem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for a discovery slot: %w", context.Cause(ctx))
	}
	defer func() { <-h.discSem }()
	src := dynamic.NewSourceFromReflection(ctx, conn, nil)
	defer src.Close()
	return src.ListServices(ctx)
}

// waitReady connects conn and waits until it is ready: the peer has
// answered the HTTP/2 handshake of its backchannel.
func waitReady(ctx context.Context, conn *grpc.ClientConn) error {
	conn.Connect()
	for {
		state := conn.GetState()
		switch state {
		case connectivity.Ready:
			return nil
		case connectivity.TransientFailure, connectivity.Shutdown:
			return fmt.Errorf("the backchannel connection failed (%s)", state)
		}
		if !conn.WaitForStateChange(ctx, state) {
			return fmt.Errorf("the backchannel did not answer its HTTP/2 handshake: %w", context.Cause(ctx))
		}
	}
}
