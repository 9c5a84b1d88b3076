package answer

import (
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// ArrivedMsg reports a new reverse call, pending until someone answers it.
type ArrivedMsg struct {
	Call *Call
}

// ReceivedMsg reports one request message of a call, in order.
type ReceivedMsg struct {
	ID  uint64
	Msg proto.Message
}

// HalfClosedMsg reports that the caller will send no more request messages.
type HalfClosedMsg struct {
	ID uint64
}

// MatchMsg tells which script rule would answer a call if the person let
// the script answer (for a single-request method, once the request is
// known). It is sent only when the Responder has a script.
type MatchMsg struct {
	ID uint64
	// Rule names the rule that would answer, as `"name" (file:line)`; ""
	// when none would.
	Rule string
	// Reason explains why no rule would answer (the closest rule and why it
	// missed).
	Reason string
}

// SentMsg reports one response message sent on a call, by the person or by
// the script.
type SentMsg struct {
	ID  uint64
	Msg proto.Message
	By  Answerer
}

// DelegatedMsg reports that the script now answers a call.
type DelegatedMsg struct {
	ID uint64
}

// EndedMsg reports that a call is over.
type EndedMsg struct {
	ID uint64
	// State is how it ended: Answered, Scripted, Expired, Cancelled,
	// Abandoned or Lost.
	State State
	// Status is the status the caller got.
	Status *status.Status
	// Header and Trailer are the response metadata sent (by the script;
	// a person sends none).
	Header, Trailer metadata.MD
}

// ResultMsg is the outcome of a person's action on a call (Reply, End,
// Fail, Delegate). Err is nil when the action was carried out; otherwise it
// says why nothing was done (a *dynamic.FieldError for a reply that does
// not fit the output type, ErrEnded when the call is already over, ...).
type ResultMsg struct {
	ID     uint64
	Action Action
	Err    error
}

// LostMsg reports that the connection that brings the calls went away
// (ConnectionLost): the calls still pending ended with its cause, and no
// more will come.
type LostMsg struct {
	Cause error
}

// ClosedMsg is what Next returns once the Responder is closed and every
// event before it has been delivered.
type ClosedMsg struct{}
