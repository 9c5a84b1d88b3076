package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/listenmux"
)

// Proxy relays between clients and one upstream. Create it with New,
// serve listeners with Serve, and end it with Shutdown.
type Proxy struct {
	cfg Config
	log *slog.Logger
	obs Observer

	// clients holds the backchannels of the multiplexed clients, where
	// the upstream's reverse calls are relayed to.
	clients *backchannel.Registry
	// listen parses the clients' calls; reverse parses the upstream's
	// reverse calls, for every link.
	listen, reverse *grpc.Server

	ids      atomic.Uint64 // of calls, without Config.NewID
	connIDs  atomic.Uint64
	stopping atomic.Bool

	// mu guards links; open counts them for Shutdown.
	mu    sync.Mutex
	links map[uint64]*link
	open  sync.WaitGroup

	shutOnce sync.Once
	shutErr  error
}

// New builds a Proxy from cfg. It listens on nothing until Serve.
func New(cfg Config) (*Proxy, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	p := &Proxy{
		cfg:     cfg,
		log:     cfg.Logger,
		obs:     cfg.Observer,
		clients: backchannel.NewRegistry(),
		links:   make(map[uint64]*link),
	}

	var creds credentials.TransportCredentials = insecure.NewCredentials()
	if cfg.ListenCreds != nil {
		creds = cfg.ListenCreds
	}
	mux := listenmux.New(creds)
	mux.SetFallback(requireHTTP2)
	mux.Register(backchannel.NewServerHandshaker(cfg.Logger, p.clients, []grpc.DialOption{
		grpc.WithIdleTimeout(cfg.BackchannelIdleTimeout),
		grpc.WithReadBufferSize(readBufferSize),
		grpc.WithDisableRetry(),
		grpc.WithWriteBufferSize(writeBufferSize),
		grpc.WithSharedWriteBuffer(true),
		grpc.WithStaticStreamWindowSize(relayStreamWindow),
		grpc.WithStaticConnWindowSize(relayConnWindow),
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(cfg.MaxMsgSize),
			grpc.MaxCallSendMsgSize(cfg.MaxMsgSize),
		),
	}, backchannel.WithServerConfiguration(cfg.ClientSide)))

	common := []grpc.ServerOption{
		grpc.ForceServerCodecV2(rawCodec{}),
		grpc.MaxRecvMsgSize(cfg.MaxMsgSize),
		grpc.MaxSendMsgSize(cfg.MaxMsgSize),
		grpc.MaxConcurrentStreams(maxConcurrentStreams),
		grpc.ReadBufferSize(readBufferSize),
		grpc.ConnectionTimeout(cfg.HandshakeTimeout),
		grpc.WaitForHandlers(true),
		grpc.NumStreamWorkers(streamWorkers),
		grpc.WriteBufferSize(writeBufferSize),
		grpc.SharedWriteBuffer(true),
		grpc.StaticStreamWindowSize(relayStreamWindow),
		grpc.StaticConnWindowSize(relayConnWindow),
	}
	p.listen = grpc.NewServer(append(append(common,
		grpc.Creds(&listenCreds{Mux: mux, p: p}),
		grpc.UnknownServiceHandler(p.relayForward),
	), cfg.ServerOptions...)...)
	// The upstream's streams carry reverse calls (HTTP/2) or are side
	// streams, piped to the client.
	reverseMux := listenmux.New(reverseCreds{})
	reverseMux.SetFallback(p.routeUpstreamStream)
	p.reverse = grpc.NewServer(append(common,
		grpc.Creds(reverseMux),
		grpc.UnknownServiceHandler(p.relayReverse),
	)...)
	return p, nil
}

// Serve accepts client connections on lis until Shutdown; it may be
// called for several listeners. It returns nil after Shutdown.
func (p *Proxy) Serve(lis net.Listener) error {
	err := p.listen.Serve(lis)
	if errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

// newID numbers a call or side stream.
func (p *Proxy) newID() uint64 {
	if p.cfg.NewID != nil {
		return p.cfg.NewID()
	}
	return p.ids.Add(1)
}

// Clients is the registry of the multiplexed clients' backchannels, with
// the IDs the proxy gave them (Conn.PeerID).
func (p *Proxy) Clients() *backchannel.Registry { return p.clients }

// Conns returns the open client connections, ordered by ID.
func (p *Proxy) Conns() []*Conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*Conn, 0, len(p.links))
	for _, l := range p.links {
		out = append(out, l.info)
	}
	sortConns(out)
	return out
}

// Shutdown stops the proxy: no new connections or calls are accepted, and
// calls in flight may finish until ctx ends; then every connection, each
// way, is closed. It returns once every call and connection has been
// reported to the Observer; ctx's error when calls had to be cut short.
func (p *Proxy) Shutdown(ctx context.Context) error {
	p.shutOnce.Do(func() {
		p.stopping.Store(true)
		done := make(chan struct{})
		go func() {
			p.listen.GracefulStop()
			close(done)
		}()
		select {
		case <-done:
		case <-ctx.Done():
			p.listen.Stop()
			<-done
			p.shutErr = fmt.Errorf("proxy: calls still running at shutdown were cancelled: %w", ctx.Err())
		}
		// The clients are gone, and their links closed their upstream
		// connections; what the upstream still had open on the reverse
		// server goes now.
		p.open.Wait()
		p.reverse.Stop()
	})
	return p.shutErr
}

// newLink makes the link of a client connection that is starting its
// handshake.
func (p *Proxy) newLink(remote net.Addr) *link {
	return &link{p: p, info: &Conn{Kind: Plain, ClientAddr: remote}}
}

// openLink opens the link of a client connection that completed its
// handshake, and starts its upstream connection.
func (p *Proxy) openLink(l *link, info credentials.AuthInfo) error {
	c := l.info
	c.ID, c.Opened = p.connIDs.Add(1), time.Now()
	if id, ok := peerID(info); ok {
		c.Kind, c.PeerID = Multiplexed, uint64(id)
		session, err := backchannel.GetYamuxSession(peer.NewContext(context.Background(), &peer.Peer{AuthInfo: info}))
		if err != nil {
			return fmt.Errorf("proxy: client %s: %w", addrString(c.ClientAddr), err)
		}
		l.clientSession = session
	}
	cc, err := p.dialUpstream(l)
	if err != nil {
		return err
	}
	l.upstream = cc

	p.mu.Lock()
	p.links[c.ID] = l
	p.open.Add(1)
	p.mu.Unlock()
	p.obs.ConnOpened(c)
	return nil
}

// linkClosed forgets a closed link.
func (p *Proxy) linkClosed(l *link, by Side) {
	p.mu.Lock()
	delete(p.links, l.info.ID)
	p.mu.Unlock()
	p.obs.ConnClosed(l.info, by)
	p.open.Done()
}

// relayForward relays a call a client made.
func (p *Proxy) relayForward(_ any, in grpc.ServerStream) error {
	l, method, err := p.callOf(in)
	if err != nil {
		return err
	}
	md, _ := metadata.FromIncomingContext(in.Context())
	c := l.newCall(calls.Forward, method, md)
	l.forwardStarted(c)
	defer l.forwardEnded(c)
	defer l.info.Forward.Add(1)
	r := &relay{p: p, l: l, c: c, in: in, target: func() (grpc.ClientConnInterface, error) { return l.upstream, nil }}
	return r.run()
}

// relayReverse relays a call the upstream made on a link's backchannel
// into the client's backchannel.
func (p *Proxy) relayReverse(_ any, in grpc.ServerStream) error {
	l, method, err := p.callOf(in)
	if err != nil {
		return err
	}
	md, _ := metadata.FromIncomingContext(in.Context())
	c := l.newCall(calls.Reverse, method, md)
	defer l.info.Reverse.Add(1)
	r := &relay{p: p, l: l, c: c, in: in, target: func() (grpc.ClientConnInterface, error) {
		return p.clients.Backchannel(backchannel.ID(l.info.PeerID))
	}}
	return r.run()
}

// callOf returns the link and method of a call.
func (p *Proxy) callOf(in grpc.ServerStream) (*link, string, error) {
	method, ok := grpc.MethodFromServerStream(in)
	if !ok {
		return nil, "", status.Error(codes.Internal, "bcctl proxy: the call has no method")
	}
	l, ok := linkOf(in.Context())
	if !ok {
		return nil, "", status.Error(codes.Internal, "bcctl proxy: the call arrived on no known connection")
	}
	return l, method, nil
}

// calleeName says what the callee of c is, for the status of a call that
// could not reach it.
func (p *Proxy) calleeName(c *Call) string {
	if c.Dir == calls.Reverse {
		return fmt.Sprintf("the backchannel of client %s", addrString(c.Conn.ClientAddr))
	}
	return "upstream " + p.upstreamName()
}

// upstreamName is the upstream's address as a user writes it.
func (p *Proxy) upstreamName() string {
	if p.cfg.UpstreamNetwork == "unix" {
		return "unix:" + p.cfg.UpstreamAddress
	}
	return p.cfg.UpstreamAddress
}
