package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/bcctl/bcctl/internal/admin/adminpb"
	"github.com/bcctl/bcctl/internal/serve"
)

// ErrUnreachable is wrapped by a Client's errors when the admin API cannot
// be reached (nothing listens, serve has stopped).
var ErrUnreachable = errors.New("cannot reach the admin API")

// Client calls the admin API of a running serve.
type Client struct {
	addr string
	conn *grpc.ClientConn
	api  adminpb.AdminClient
}

// NewClient returns a client of the admin API at addr ("host:port" or
// "unix:PATH"). It connects on the first call.
func NewClient(addr string) (*Client, error) {
	network, address := serve.SplitAddress(addr)
	dialer := &net.Dialer{}
	conn, err := grpc.NewClient("passthrough:///"+address,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, address)
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("admin: %s: %w", addr, err)
	}
	return &Client{addr: addr, conn: conn, api: adminpb.NewAdminClient(conn)}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Conn is the connection to the admin API.
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

// wrap explains an error of an admin RPC.
func (c *Client) wrap(name string, err error) error {
	if err == nil {
		return nil
	}
	st, _ := status.FromError(err)
	if st.Code() == codes.Unavailable {
		return fmt.Errorf("%w at %s (is bcctl serve running with --admin %s?): %s", ErrUnreachable, c.addr, c.addr, st.Message())
	}
	if st.Code() == codes.Unimplemented {
		return fmt.Errorf("admin: %s at %s: %s (is this the admin address of bcctl serve?)", name, c.addr, st.Message())
	}
	return err
}

// receive hands each message of a server stream to next until the stream
// ends (nil), next fails or the call does.
func receive[T any](c *Client, name string, s grpc.ServerStreamingClient[T], err error, next func(*T) error) error {
	if err != nil {
		return c.wrap(name, err)
	}
	for {
		msg, err := s.Recv()
		if err == io.EOF {
			return nil
		} else if err != nil {
			return c.wrap(name, err)
		}
		if err := next(msg); err != nil {
			return err
		}
	}
}

// WatchPeers calls snapshot with the connected peers, then change with
// every change, until ctx ends, serve stops (nil) or a callback fails.
func (c *Client) WatchPeers(ctx context.Context, snapshot func([]*adminpb.Peer) error, change func(*adminpb.PeerChange) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := c.api.WatchPeers(ctx, &adminpb.WatchPeersRequest{})
	return receive(c, "WatchPeers", s, err, func(r *adminpb.WatchPeersResponse) error {
		switch ev := r.Event.(type) {
		case *adminpb.WatchPeersResponse_Snapshot:
			return snapshot(ev.Snapshot.GetPeers())
		case *adminpb.WatchPeersResponse_Change:
			return change(ev.Change)
		}
		return nil
	})
}

// Journal calls line with each journal entry q selects, until the stream
// ends (after the kept entries, or with q.Follow when serve stops), ctx
// ends or line fails.
func (c *Client) Journal(ctx context.Context, q *adminpb.StreamJournalRequest, line func(*adminpb.StreamJournalResponse) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := c.api.StreamJournal(ctx, q)
	return receive(c, "StreamJournal", s, err, line)
}

// Server describes the serve.
func (c *Client) Server(ctx context.Context) (*adminpb.GetServerResponse, error) {
	out, err := c.api.GetServer(ctx, &adminpb.GetServerRequest{})
	return out, c.wrap("GetServer", err)
}

// Peers lists the connected peers.
func (c *Client) Peers(ctx context.Context) ([]*adminpb.Peer, error) {
	out, err := c.api.ListPeers(ctx, &adminpb.ListPeersRequest{})
	if err != nil {
		return nil, c.wrap("ListPeers", err)
	}
	return out.GetPeers(), nil
}

// CallPeer makes a reverse call on a peer's backchannel.
func (c *Client) CallPeer(ctx context.Context, req *adminpb.CallPeerRequest) (*adminpb.CallPeerResponse, error) {
	out, err := c.api.CallPeer(ctx, req)
	return out, c.wrap("CallPeer", err)
}

// CheckExpectations checks the script's expectations now.
func (c *Client) CheckExpectations(ctx context.Context) (*adminpb.CheckExpectationsResponse, error) {
	out, err := c.api.CheckExpectations(ctx, &adminpb.CheckExpectationsRequest{})
	return out, c.wrap("CheckExpectations", err)
}
