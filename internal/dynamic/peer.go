package dynamic

import (
	"context"

	"github.com/bcctl/bcctl/backchannel"
)

// backchannelPeerID returns the backchannel ID of the connection a call
// arrived on, 0 when it did not arrive over a multiplexed connection (a
// plain gRPC client, or a reverse call on the client's side of a
// backchannel).
func backchannelPeerID(ctx context.Context) uint64 {
	id, err := backchannel.GetPeerID(ctx)
	if err != nil {
		return 0
	}
	return uint64(id)
}
