package serve

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sync"

	"google.golang.org/grpc/codes"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/fanout"
	"github.com/bcctl/bcctl/internal/journal"
)

// Maker says who answered or made a call (journal.Entry's `by`).
type Maker string

// The makers of calls.
const (
	// ByScript: a script rule answered the call, or a `call` step of the
	// script (in a rule or on_connect) made it.
	ByScript Maker = journal.ByScript
	// ByAdmin: the admin API (bcctl peers call).
	ByAdmin Maker = journal.ByAdmin
	// ByTUI: the serve TUI.
	ByTUI Maker = journal.ByTUI
)

// Event is one finished call in the journal of a Server: a forward call
// serve answered, or a reverse call it made into a peer's backchannel.
type Event struct {
	// ID numbers the journal's entries from 1. IDs are unique; an entry
	// may refer to an ID whose own entry comes later (a forward call ends
	// after the reverse calls it caused).
	ID uint64
	// Cause is the ID of the answered forward call during which this
	// reverse call was made; 0 when there is none.
	Cause uint64
	// By says who answered or made the call; "" for a call to a method
	// that is not in the schema (serve answered UNIMPLEMENTED by itself).
	By Maker
	// Call is what happened. It must not be modified.
	Call *calls.Event
	// Types resolves the types inside google.protobuf.Any for rendering
	// the messages.
	Types dynamic.TypeResolver
	// Bytes says how the entry shows bytes fields (Config.Bytes).
	Bytes dynamic.BytesMode

	// cut marks a forward call cut short by the stop.
	cut bool
	// render renders the entry with Types and Bytes, remembering repeated
	// messages; nil renders without a memory.
	render    *journal.Renderer
	entryOnce sync.Once
	entry     journal.Entry
}

// EventOf returns an event for Hub.Add whose journal entry was made
// elsewhere (bcctl proxy renders its calls with its own decoder): the
// entry's ID and Cause are the event's, and call is what journal filters
// and the peers' counters read (its messages are not needed).
func EventOf(entry journal.Entry, call *calls.Event, by Maker) *Event {
	ev := &Event{ID: entry.ID, Cause: entry.Cause, By: by, Call: call, entry: entry}
	ev.entryOnce.Do(func() {})
	return ev
}

// Entry is the event as a journal line, with the journal's IDs. It is
// built once, on first use, and shared: do not modify it.
func (ev *Event) Entry() journal.Entry {
	ev.entryOnce.Do(func() {
		if ev.render != nil {
			ev.entry = ev.render.FromEvent(ev.Call, string(ev.By))
		} else {
			ev.entry = journal.FromEvent(ev.Call, string(ev.By), journal.Rendering{Resolver: ev.Types, Bytes: ev.Bytes})
		}
		ev.entry.ID, ev.entry.Cause = ev.ID, ev.Cause
		if ev.entry.Status == nil {
			// A nil *status.Status means OK (the script engine's made calls
			// report success that way); the journal always has a status.
			ev.entry.Status = &journal.Status{Code: "OK"}
		}
	})
	return ev.entry
}

// Filter selects journal events. The zero Filter selects every event.
type Filter struct {
	// Method is a method name or glob ("gitaly.*/*"); "" for any.
	Method string
	// Dir is the direction; 0 for either.
	Dir calls.Direction
	// Peer is the backchannel ID of the peer, when HasPeer.
	Peer    uint64
	HasPeer bool
	// Code is the status code, when HasCode.
	Code    codes.Code
	HasCode bool
	// AfterID selects events whose ID is greater.
	AfterID uint64
}

// Validate reports a Method glob that cannot match anything.
func (f Filter) Validate() error {
	if f.Method == "" {
		return nil
	}
	if _, err := path.Match(f.Method, ""); err != nil {
		return fmt.Errorf("serve: journal filter: method %q: %w", f.Method, err)
	}
	return nil
}

// Match reports whether f selects ev.
func (f Filter) Match(ev *Event) bool {
	c := ev.Call
	switch {
	case ev.ID <= f.AfterID:
		return false
	case f.Dir != 0 && c.Dir != f.Dir:
		return false
	case f.HasPeer && c.Peer.BackchannelID != f.Peer:
		return false
	case f.HasCode && c.Status.Code() != f.Code:
		return false
	case f.Method != "" && f.Method != c.Method:
		ok, _ := path.Match(f.Method, c.Method)
		return ok
	}
	return true
}

// journalIDs numbers events. Events of the script engine carry the
// engine's own IDs, and a reverse call names its cause by the engine ID of
// a forward call that has not finished yet; such a cause gets its journal
// ID when the first call it caused is recorded, and keeps it.
type journalIDs struct {
	mu       sync.Mutex
	last     uint64
	reserved map[uint64]uint64 // engine ID -> journal ID, causes still running
}

// assign returns the journal IDs of an event whose engine ID is engineID
// (0 for events from outside the engine) and whose cause is engineCause.
func (j *journalIDs) assign(engineID, engineCause uint64) (id, cause uint64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.reserved == nil {
		j.reserved = map[uint64]uint64{}
	}
	if engineCause != 0 {
		cause = j.reserved[engineCause]
		if cause == 0 {
			j.last++
			cause = j.last
			j.reserved[engineCause] = cause
		}
	}
	if engineID != 0 {
		if r, ok := j.reserved[engineID]; ok {
			delete(j.reserved, engineID)
			return r, cause
		}
	}
	j.last++
	return j.last, cause
}

// next reserves the next journal ID for an event numbered before it ends.
func (j *journalIDs) next() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.last++
	return j.last
}

// ErrSubscriberTooSlow ends a journal subscription whose reader fell so
// far behind that serve stopped queueing for it.
var ErrSubscriberTooSlow = errors.New("serve: journal subscriber too slow: events were dropped")

// maxSubscriberQueue is how many events queue for one subscriber before
// the subscription ends with ErrSubscriberTooSlow.
const maxSubscriberQueue = 100_000

// SubscribeOptions say which events a subscription delivers.
type SubscribeOptions struct {
	Filter Filter
	// Backlog delivers the recent events serve keeps in memory
	// (Config.JournalBacklog) before the live ones.
	Backlog bool
	// Follow keeps delivering events as calls finish, until the context
	// ends or the server stops. Without it, the subscription ends after the
	// backlog.
	Follow bool
}

// Subscription delivers journal events in the order they were recorded.
type Subscription struct {
	// C receives the events; it is closed when the subscription ends.
	C <-chan *Event

	sub *fanout.Subscription[*Event]
}

// Err tells why the subscription ended once C is closed: nil when the
// backlog was delivered (without Follow), the context ended or the server
// stopped; ErrSubscriberTooSlow when events had to be dropped.
func (s *Subscription) Err() error {
	if errors.Is(s.sub.Err(), fanout.ErrOverflow) {
		return ErrSubscriberTooSlow
	}
	return nil
}

// eventLog keeps the recent events and feeds the subscriptions.
type eventLog struct {
	mu   sync.Mutex
	ring []*Event // guarded by mu
	next int      // where the next event goes once the ring is full; guarded by mu
	size int
	feed fanout.Feed[*Event] // published under mu, so backlogs fit
}

func newEventLog(size int) *eventLog { return &eventLog{size: size} }

func (l *eventLog) add(ev *Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.size > 0 {
		if len(l.ring) < l.size {
			l.ring = append(l.ring, ev)
		} else {
			l.ring[l.next] = ev
			l.next = (l.next + 1) % l.size
		}
	}
	l.feed.Publish(ev)
}

// recentLocked returns the kept events, oldest first.
func (l *eventLog) recentLocked() []*Event {
	if len(l.ring) < l.size || l.next == 0 {
		return l.ring
	}
	out := make([]*Event, 0, len(l.ring))
	out = append(out, l.ring[l.next:]...)
	return append(out, l.ring[:l.next]...)
}

func (l *eventLog) subscribe(ctx context.Context, opts SubscribeOptions) *Subscription {
	fo := fanout.Options[*Event]{Keep: opts.Filter.Match, Limit: maxSubscriberQueue, BacklogOnly: !opts.Follow}
	l.mu.Lock()
	defer l.mu.Unlock()
	if opts.Backlog {
		fo.Backlog = l.recentLocked()
	}
	sub := l.feed.Subscribe(ctx, fo)
	return &Subscription{C: sub.C, sub: sub}
}

// close ends every subscription once it has delivered what is queued.
func (l *eventLog) close() { l.feed.Close() }
