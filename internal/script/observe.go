package script

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/bcctl/bcctl/internal/dynamic"
)

// Origin says whether the engine answered a call or made it.
type Origin int

// Origins of calls.
const (
	// Answered: a peer called and a rule (or nobody) answered.
	Answered Origin = iota + 1
	// Made: a `call` step invoked a method on the other side.
	Made
)

// String returns "answered" or "made".
func (o Origin) String() string {
	if o == Made {
		return "made"
	}
	return "answered"
}

// CallEvent describes one finished call, answered or made by the engine:
// everything a journal line or a TUI row needs. Messages are not modified
// after the event is delivered, and must not be modified by observers.
type CallEvent struct {
	// ID is unique among the engine's calls; Cause refers to it.
	ID uint64
	// Cause is the ID of the answered call during which this call was made
	// (0 for answered calls and for calls made by on_connect).
	Cause uint64
	// Dir is the call's direction (forward to the upstream, reverse into a
	// backchannel).
	Dir Direction
	// Origin says whether the engine answered or made the call.
	Origin Origin
	// Peer is who called (answered calls) or who was called (made calls).
	Peer dynamic.Peer
	// Method is "pkg.Service/Method".
	Method string
	// Metadata is the request metadata: received, or sent.
	Metadata metadata.MD
	// Header and Trailer are the response metadata: sent, or received.
	Header  metadata.MD
	Trailer metadata.MD
	// Requests and Responses are the messages each way, in order.
	Requests  []proto.Message
	Responses []proto.Message
	// Status is how the call ended (never nil; code OK on success).
	Status *status.Status
	// Start is when the call began; Duration how long it took.
	Start    time.Time
	Duration time.Duration
	// Rule is the rule that answered the call, or that made it; zero when
	// no rule matched (the call got UNIMPLEMENTED) or on_connect made it.
	Rule RuleRef
	// Step is where the `call` step that made the call is written (made
	// calls only).
	Step Pos
}

// Record returns what expectations count of the event. Rule is set only
// for answered calls: `expect: {rule: X}` counts the calls X answered.
func (ev *CallEvent) Record() Record {
	rec := Record{Dir: ev.Dir, Method: ev.Method, Peer: ev.Peer.BackchannelID, Code: ev.Status.Code()}
	if ev.Origin == Answered {
		rec.Rule = ev.Rule.Name
	}
	return rec
}

// Observer receives an event for every call the engine finishes. It is
// called from the goroutines of the calls, concurrently, after the call's
// status is known; it should return quickly.
type Observer interface {
	ObserveCall(ev *CallEvent)
}

// ObserverFunc adapts a function to an Observer.
type ObserverFunc func(ev *CallEvent)

// ObserveCall calls f(ev).
func (f ObserverFunc) ObserveCall(ev *CallEvent) { f(ev) }

// Target is one connection a `call` step invokes a method on.
type Target struct {
	// Peer says who is called (for events and `${x.peer.id}`).
	Peer dynamic.Peer
	// Conn carries the call; methods are invoked with dynamic messages.
	Conn grpc.ClientConnInterface
}

// Caller gives `call` steps their connections to the other side.
//
// to is "" for the peer whose call is being answered (on the client side:
// the upstream; in on_connect: the peer that arrived), "all" for every
// connected peer, or a peer's backchannel ID in decimal. from is the peer
// of the call being answered (or the one that arrived). An error means
// the target cannot be reached: the step sees it as the call's status
// (UNAVAILABLE unless the error is a gRPC status).
type Caller interface {
	Targets(ctx context.Context, from dynamic.Peer, to string) ([]Target, error)
}

// CallerFunc adapts a function to a Caller.
type CallerFunc func(ctx context.Context, from dynamic.Peer, to string) ([]Target, error)

// Targets calls f.
func (f CallerFunc) Targets(ctx context.Context, from dynamic.Peer, to string) ([]Target, error) {
	return f(ctx, from, to)
}
