package serve

import (
	"context"
	"errors"
	"strings"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/dynamic"
)

// peerJoined starts what serve does for every new peer: the script's
// on_connect steps, and the listing of its backchannel services.
func (s *Server) peerJoined(p *peerState) {
	id := p.info.ID
	peer := calls.Peer{Addr: addrString(p.info.RemoteAddr), BackchannelID: uint64(id)}
	if s.ctx.Err() != nil {
		return
	}
	if s.engine.Script().HasOnConnect() {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.engine.OnConnect(s.ctx, peer); err != nil {
				s.log.Warn("serve: on_connect failed", "peer", uint64(id), "remote", peer.Addr, "err", err)
				s.peers.update(id, func(p *peerState) { p.onConErr = err.Error() })
			}
		}()
	}
	if s.cfg.NoDiscovery {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		select {
		case s.discSem <- struct{}{}:
		case <-s.ctx.Done():
			return
		}
		defer func() { <-s.discSem }()
		s.discover(id)
	}()
}

// discover lists the services peer id offers by reflection over its
// backchannel.
func (s *Server) discover(id backchannel.ID) {
	conn, err := s.reg.Backchannel(id)
	if err != nil {
		return // it has left
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.DiscoveryTimeout)
	defer cancel()
	src := dynamic.NewSourceFromReflection(ctx, conn, nil)
	names, err := src.ListServices(ctx)
	src.Close()
	if s.ctx.Err() != nil {
		return
	}
	services := make([]string, 0, len(names))
	for _, n := range names {
		if strings.HasPrefix(string(n), "grpc.reflection.") {
			continue // the means, not the offer
		}
		services = append(services, string(n))
	}
	s.peers.update(id, func(p *peerState) {
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
