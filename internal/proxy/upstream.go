package proxy

import (
	"context"
	"fmt"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/bcctl/bcctl/backchannel"
)

// dialUpstream creates the link's upstream connection: multiplexed, with
// the proxy's reverse relay on its backchannel, when the client is; plain
// when it is not. It connects at once, in the background: a call that
// arrives meanwhile waits for the connection, and fails with UNAVAILABLE
// and the reason when it cannot be made.
func (p *Proxy) dialUpstream(l *link) (*grpc.ClientConn, error) {
	var creds credentials.TransportCredentials = insecure.NewCredentials()
	if p.cfg.UpstreamCreds != nil {
		creds = p.cfg.UpstreamCreds
	}
	if l.info.Kind == Multiplexed {
		factory := func() backchannel.Server { return &reverseServer{p: p, l: l} }
		creds = backchannel.NewClientHandshaker(p.log, factory, p.cfg.UpstreamSide).ClientHandshake(creds)
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithContextDialer(l.dialUpstream),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.DefaultConfig, MinConnectTimeout: p.cfg.ConnectTimeout}),
		// The client decides about retries; the proxy never repeats a call.
		grpc.WithDisableRetry(),
		// The upstream connection lives as long as the client's: an idle
		// channel would close it, and with it the upstream's way back.
		grpc.WithIdleTimeout(0),
		grpc.WithReadBufferSize(readBufferSize),
		grpc.WithWriteBufferSize(writeBufferSize),
		grpc.WithSharedWriteBuffer(true),
		grpc.WithStaticStreamWindowSize(relayStreamWindow),
		grpc.WithStaticConnWindowSize(relayConnWindow),
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(p.cfg.MaxMsgSize),
			grpc.MaxCallSendMsgSize(p.cfg.MaxMsgSize),
		),
	}
	if p.cfg.UpstreamAuthority != "" {
		opts = append(opts, grpc.WithAuthority(p.cfg.UpstreamAuthority))
	}
	opts = append(opts, p.cfg.DialOptions...)
	cc, err := grpc.NewClient("passthrough:///"+p.cfg.UpstreamAddress, opts...)
	if err != nil {
		return nil, fmt.Errorf("proxy: upstream connection for %s: %w", addrString(l.info.ClientAddr), err)
	}
	cc.Connect()
	return cc, nil
}

// dialUpstream opens a network connection to the upstream for the link.
func (l *link) dialUpstream(ctx context.Context, _ string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, l.p.cfg.UpstreamNetwork, l.p.cfg.UpstreamAddress)
	if err != nil {
		return nil, err
	}
	return &upstreamConn{Conn: conn, l: l}, nil
}

// upstreamConn is a link's network connection to the upstream. It tells
// the link when the upstream goes away: before gRPC (reading through it)
// fails the calls that were on it, so those calls are put down to the
// upstream.
type upstreamConn struct {
	net.Conn
	l    *link
	gone bool // set on the first failed read; only the reader touches it
}

func (c *upstreamConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && !c.gone {
		c.gone = true
		c.l.lost(SideUpstream)
	}
	return n, err
}
