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
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/serve"
)

// ErrUnreachable is wrapped by a Client's errors when the admin API cannot
// be reached (nothing listens, serve has stopped).
var ErrUnreachable = errors.New("cannot reach the admin API")

// Client calls the admin API of a running serve with dynamic messages.
type Client struct {
	addr string
	conn *grpc.ClientConn
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
	return &Client{addr: addr, conn: conn}, nil
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

// unary calls method name with req and decodes the response into resp.
func (c *Client) unary(ctx context.Context, name string, req, resp any) error {
	md, err := method(name)
	if err != nil {
		return err
	}
	in, err := toMessage(md.Input(), req)
	if err != nil {
		return err
	}
	out := dynamicpb.NewMessage(md.Output())
	if err := c.conn.Invoke(ctx, dynamic.FullMethod(md), in, out); err != nil {
		return c.wrap(name, err)
	}
	return fromMessage(out, resp)
}

// stream calls server-streaming method name with req and hands each
// response to next until the stream ends, next fails or ctx ends.
func (c *Client) stream(ctx context.Context, name string, req any, next func(proto.Message) error) error {
	md, err := method(name)
	if err != nil {
		return err
	}
	in, err := toMessage(md.Input(), req)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := c.conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, dynamic.FullMethod(md))
	if err != nil {
		return c.wrap(name, err)
	}
	if err := s.SendMsg(in); err != nil && err != io.EOF {
		return c.wrap(name, err)
	}
	if err := s.CloseSend(); err != nil {
		return c.wrap(name, err)
	}
	for {
		out := dynamicpb.NewMessage(md.Output())
		if err := s.RecvMsg(out); err == io.EOF {
			return nil
		} else if err != nil {
			return c.wrap(name, err)
		}
		if err := next(out); err != nil {
			return err
		}
	}
}

// WatchPeers calls snapshot with the connected peers, then change with
// every change, until ctx ends, serve stops (nil) or a callback fails.
func (c *Client) WatchPeers(ctx context.Context, snapshot func([]Peer) error, change func(PeerChange) error) error {
	return c.stream(ctx, "WatchPeers", empty{}, func(msg proto.Message) error {
		var r watchPeersResponse
		if err := fromMessage(msg, &r); err != nil {
			return err
		}
		switch {
		case r.Snapshot != nil:
			return snapshot(r.Snapshot.Peers)
		case r.Change != nil:
			return change(*r.Change)
		}
		return nil
	})
}

// Journal calls line with each journal entry q selects, until the stream
// ends (after the kept entries, or with q.Follow when serve stops), ctx
// ends or line fails.
func (c *Client) Journal(ctx context.Context, q JournalQuery, line func(JournalLine) error) error {
	return c.stream(ctx, "StreamJournal", q, func(msg proto.Message) error {
		var l JournalLine
		if err := fromMessage(msg, &l); err != nil {
			return err
		}
		return line(l)
	})
}

// Server describes the serve.
func (c *Client) Server(ctx context.Context) (*ServerInfo, error) {
	var out ServerInfo
	if err := c.unary(ctx, "GetServer", empty{}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Peers lists the connected peers.
func (c *Client) Peers(ctx context.Context) ([]Peer, error) {
	var out peerList
	if err := c.unary(ctx, "ListPeers", empty{}, &out); err != nil {
		return nil, err
	}
	return out.Peers, nil
}

// CallPeer makes a reverse call on a peer's backchannel.
func (c *Client) CallPeer(ctx context.Context, req CallPeerRequest) (*CallPeerResponse, error) {
	var out CallPeerResponse
	if err := c.unary(ctx, "CallPeer", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CheckExpectations checks the script's expectations now.
func (c *Client) CheckExpectations(ctx context.Context) (*Expectations, error) {
	var out Expectations
	if err := c.unary(ctx, "CheckExpectations", empty{}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
