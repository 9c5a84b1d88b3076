package serve

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bcctl/bcctl/backchannel"
)

// peerConn is a peer's backchannel as serve calls it. When the peer leaves,
// the backchannel's ClientConn is closed, and gRPC ends the calls in flight
// on a closing ClientConn CANCELLED ("the client connection is closing"):
// that would read as if serve had given up on them, and whether they end
// so or UNAVAILABLE (the session under them failing first) is a matter of
// timing. peerConn ends them UNAVAILABLE, as every other way of reaching a
// peer that is not there does.
type peerConn struct {
	cc grpc.ClientConnInterface
	id backchannel.ID
	// gone reports whether the peer has left.
	gone func() bool
}

// peerConn returns the connection to peer id's backchannel.
func (h *Hub) peerConn(id backchannel.ID) (*peerConn, error) {
	cc, err := h.reg.Backchannel(id)
	if err != nil {
		return nil, err
	}
	return &peerConn{cc: cc, id: id, gone: func() bool {
		_, err := h.reg.Backchannel(id)
		return err != nil
	}}, nil
}

func (c *peerConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	return c.status(c.cc.Invoke(ctx, method, args, reply, opts...))
}

func (c *peerConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	cs, err := c.cc.NewStream(ctx, desc, method, opts...)
	if err != nil {
		return nil, c.status(err)
	}
	return &peerStream{ClientStream: cs, c: c}, nil
}

// status turns CANCELLED on a peer that has left into UNAVAILABLE. The
// registry forgets a peer before it closes the peer's backchannel, so a
// call that the closing ended finds the peer gone.
func (c *peerConn) status(err error) error {
	if status.Code(err) != codes.Canceled || !c.gone() {
		return err
	}
	return status.Error(codes.Unavailable, fmt.Sprintf("peer %d left during the call", c.id))
}

// peerStream is a stream on a peerConn.
type peerStream struct {
	grpc.ClientStream
	c *peerConn
}

func (s *peerStream) SendMsg(m any) error { return s.c.status(s.ClientStream.SendMsg(m)) }
func (s *peerStream) RecvMsg(m any) error { return s.c.status(s.ClientStream.RecvMsg(m)) }
func (s *peerStream) CloseSend() error    { return s.c.status(s.ClientStream.CloseSend()) }
