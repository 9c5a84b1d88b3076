package serve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/journal"
)

// observeEngine records an event of the script engine.
func (s *Server) observeEngine(ev *calls.Event) {
	s.record(ev, ev.ID, ev.Cause, ByScript, nil)
}

// record numbers an event, counts it, writes it to the journal sink and
// hands it to the subscribers, and stops serve after Config.MaxCalls
// answered forward calls. It runs in the goroutine of the call, before
// the call's outcome goes further.
func (s *Server) record(ev *calls.Event, engineID, engineCause uint64, by Maker, types dynamic.TypeResolver) *Event {
	if ev.Dir == calls.Forward && ev.Origin == calls.Answered && s.cut.Load() {
		// The connections are closed: the peer got UNAVAILABLE, whatever
		// the script came to say.
		cut := *ev
		cut.Status = status.Newf(codes.Unavailable, "serve stopped: the call was cut short when the grace period ran out (the script would have answered %s)", calls.CodeName(ev.Status.Code()))
		e := s.Hub.event(&cut, 0, 0, by, types)
		e.cut = true
		s.Hub.number(e, engineID, engineCause)
		return e
	}
	e := s.Hub.record(ev, engineID, engineCause, by, types)
	if ev.Dir == calls.Forward && ev.Origin == calls.Answered {
		n := s.answered.Add(1)
		if s.cfg.MaxCalls > 0 && n >= s.cfg.MaxCalls {
			s.requestStop(fmt.Sprintf("answered %d forward calls (the limit)", n))
		}
	}
	return e
}

// record numbers an event and adds it (see add).
//
// types resolves Any in the messages; nil means the schema of the call's
// direction.
func (h *Hub) record(ev *calls.Event, engineID, engineCause uint64, by Maker, types dynamic.TypeResolver) *Event {
	e := h.event(ev, 0, 0, by, types)
	h.number(e, engineID, engineCause)
	return e
}

// number gives e its journal IDs and adds it (see add) in one step, so
// that the journal sink, the backlog and the subscribers get the events
// numbered here in the order of their IDs.
func (h *Hub) number(e *Event, engineID, engineCause uint64) {
	h.count(e)
	h.order.Lock()
	defer h.order.Unlock()
	e.ID, e.Cause = h.ids.assign(engineID, engineCause)
	h.publishLocked(e)
}

// AddCall records a call whose ID and Cause are journal IDs already
// (NextID gave them: bcctl proxy's script engine numbers its calls so),
// with its messages rendered by the schema of its direction; by says who
// made or answered it. It counts the call, queues it for the journal sink
// (waiting for room while the queue is full) and hands it to the
// subscribers, before it returns.
func (h *Hub) AddCall(ev *calls.Event, by Maker) *Event {
	e := h.event(ev, ev.ID, ev.Cause, by, nil)
	h.add(e)
	return e
}

// event makes the journal event of ev. types resolves Any in the
// messages; nil means the schema of the call's direction.
func (h *Hub) event(ev *calls.Event, id, cause uint64, by Maker, types dynamic.TypeResolver) *Event {
	var render *journal.Renderer
	if types == nil {
		types, render = h.cfg.Schema.Types(), h.renderForward
		if ev.Dir == calls.Reverse {
			types, render = h.cfg.PeerSchema.Types(), h.renderReverse
		}
	}
	return &Event{ID: id, Cause: cause, By: by, Call: ev, Types: types, Bytes: h.cfg.Bytes, render: render}
}

// add counts an event, writes it to the journal sink and hands it to the
// subscribers. An event without a method (a side stream bcctl proxy
// piped) is journaled but counted as no call.
func (h *Hub) add(e *Event) {
	h.count(e)
	h.order.Lock()
	defer h.order.Unlock()
	h.publishLocked(e)
}

// count counts an event in the hub's and its peer's counters.
func (h *Hub) count(e *Event) {
	ev := e.Call
	if ev.Method != "" {
		switch {
		case ev.Dir == calls.Reverse:
			h.reverse.Add(1)
		case e.cut:
			h.cut.Add(1)
		default:
			h.forward.Add(1)
		}
		if ev.Peer.BackchannelID != 0 {
			h.peers.count(backchannel.ID(ev.Peer.BackchannelID), ev.Dir, ev.Method, ev.Status.Code(), ev.Start.Add(ev.Duration))
		}
	}
}

// publishLocked hands e to the journal sink's queue (waiting for room
// while it is full), the backlog and the subscribers. h.order is held, so
// that they all get the events in one order.
func (h *Hub) publishLocked(e *Event) {
	if h.journal != nil {
		h.journal.push(e)
	}
	h.events.add(e)
}

// journalFailed counts the entries the journal sink lost, and logs the
// first failure.
func (h *Hub) journalFailed(e *Event, err error) {
	n := uint64(1)
	if lost := (*journal.LostError)(nil); errors.As(err, &lost) {
		n = uint64(lost.N)
	}
	if h.journalErrors.Add(n) == n {
		attrs := []any{"err", err}
		if e != nil {
			attrs = append(attrs, "id", e.ID)
		}
		h.log.Error("serve: journal: cannot write an entry (further errors are counted, not logged)", attrs...)
	}
}

// unknownService answers calls to methods that are not in the schema:
// UNIMPLEMENTED with the names that do exist, journaled like every call.
func (s *Server) unknownService(_ any, stream grpc.ServerStream) error {
	dynamic.MarkReached(stream.Context())
	start := time.Now()
	full, _ := grpc.MethodFromServerStream(stream)
	name := strings.TrimPrefix(full, "/")
	msg := fmt.Sprintf("serve: unknown method %s", full)
	if _, err := dynamic.FindMethod(stream.Context(), s.cfg.Schema, name); err != nil {
		msg = fmt.Sprintf("serve: %v", err)
	}
	st := status.New(codes.Unimplemented, msg)
	md, _ := metadata.FromIncomingContext(stream.Context())
	if md == nil {
		md = metadata.MD{}
	}
	ev := &calls.Event{
		Dir: calls.Forward, Origin: calls.Answered, Peer: peerOf(stream.Context()),
		Method: name, Metadata: md, Status: st, Start: start, Duration: time.Since(start),
	}
	s.engine.Count(ev.Record())
	s.record(ev, 0, 0, "", nil)
	return st.Err()
}

// peerOf tells who made the call in ctx.
func peerOf(ctx context.Context) calls.Peer {
	var p calls.Peer
	if pr, ok := peer.FromContext(ctx); ok && pr.Addr != nil {
		p.Addr = pr.Addr.String()
	}
	if id, err := backchannel.GetPeerID(ctx); err == nil {
		p.BackchannelID = uint64(id)
	}
	return p
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}
