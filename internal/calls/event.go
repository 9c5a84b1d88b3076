package calls

import (
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Event describes one finished call, answered or made by bcctl:
// everything a journal line or a TUI row needs. Messages are not modified
// after the event is delivered, and must not be modified by observers.
type Event struct {
	// ID is unique among the calls of one engine; Cause refers to it.
	ID uint64
	// Cause is the ID of the answered call during which this call was made
	// (0 for answered calls and for calls made by on_connect).
	Cause uint64
	// Dir is the call's direction (forward to the upstream, reverse into a
	// backchannel).
	Dir Direction
	// Origin says whether bcctl answered or made the call.
	Origin Origin
	// Peer is who called (answered calls) or who was called (made calls).
	Peer Peer
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
	// Sidechannel is what went through the call's sidechannel; nil when
	// it had none.
	Sidechannel *Sidechannel
}

// Record returns what expectations count of the event. Rule is set only
// for answered calls: `expect: {rule: X}` counts the calls X answered.
func (ev *Event) Record() Record {
	rec := Record{Dir: ev.Dir, Method: ev.Method, Peer: ev.Peer.BackchannelID, Code: ev.Status.Code()}
	if ev.Origin == Answered {
		rec.Rule = ev.Rule.Name
	}
	return rec
}

// Record is what a script's expectations are checked against: one call
// that happened, reduced to the fields an `expect` entry can filter on. It
// is comparable, so records can be counted in a map.
type Record struct {
	// Dir is the call's direction.
	Dir Direction
	// Method is "pkg.Svc/Method".
	Method string
	// Peer is the backchannel ID, 0 when not multiplexed.
	Peer uint64
	// Code is how the call ended.
	Code codes.Code
	// Rule is the name of the rule that answered, "" when none.
	Rule string
}

// Observer receives an event for every call that finishes. It is called
// from the goroutines of the calls, concurrently, after the call's status
// is known; it should return quickly.
type Observer interface {
	ObserveCall(ev *Event)
}

// ObserverFunc adapts a function to an Observer.
type ObserverFunc func(ev *Event)

// ObserveCall calls f(ev).
func (f ObserverFunc) ObserveCall(ev *Event) { f(ev) }
