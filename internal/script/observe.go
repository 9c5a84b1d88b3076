package script

import (
	"context"

	"google.golang.org/grpc"

	"github.com/bcctl/bcctl/internal/calls"
)

// Target is one connection a `call` step invokes a method on.
type Target struct {
	// Peer says who is called (for events and `${x.peer.id}`).
	Peer calls.Peer
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
	Targets(ctx context.Context, from calls.Peer, to string) ([]Target, error)
}

// CallerFunc adapts a function to a Caller.
type CallerFunc func(ctx context.Context, from calls.Peer, to string) ([]Target, error)

// Targets calls f.
func (f CallerFunc) Targets(ctx context.Context, from calls.Peer, to string) ([]Target, error) {
	return f(ctx, from, to)
}
