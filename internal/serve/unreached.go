package serve

import (
	"context"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/dynamic"
)

// unreached journals the forward calls that ended before serve's handler
// saw them (dynamic.UnreachedCalls): every finished call is a journal
// entry, counted like any other, with the status the peer got.
func (s *Server) unreached(ctx context.Context, c dynamic.UnreachedCall) {
	ev := &calls.Event{
		Dir: calls.Forward, Origin: calls.Answered, Peer: peerOf(ctx),
		Method: c.Method, Metadata: c.Metadata, Status: c.Status,
		Start: c.Start, Duration: c.Duration,
	}
	s.engine.Count(ev.Record())
	s.record(ev, 0, 0, "", nil)
}
