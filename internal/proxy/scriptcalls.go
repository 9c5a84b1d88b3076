package proxy

import (
	"context"

	"google.golang.org/grpc"
)

// UpstreamOf returns the upstream connection of the client connection
// that the call in ctx belongs to (ctx is the context of a call a Tamper
// handles, forward or reverse): a call made on it reaches the upstream on
// that client's own connection, as the client's calls do. It is false when
// ctx is not a relayed call's.
func UpstreamOf(ctx context.Context) (grpc.ClientConnInterface, bool) {
	l, ok := linkOf(ctx)
	if !ok || l.upstream == nil {
		return nil, false
	}
	return l.upstream, true
}
