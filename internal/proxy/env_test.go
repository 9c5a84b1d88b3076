package proxy_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/internal/proxy"
	"github.com/bcctl/bcctl/internal/testcert"
	"github.com/bcctl/bcctl/listenmux"
)

// testTimeout bounds every test's context.
const testTimeout = time.Minute

// transport is one way of carrying the connections under test, on both
// sides of the proxy.
type transport struct {
	name    string
	network string // "tcp" or "unix"
	tls     bool
}

// transports are the ways every end-to-end test runs.
var transports = []transport{
	{name: "tcp", network: "tcp"},
	{name: "tls", network: "tcp", tls: true},
	{name: "unix", network: "unix"},
}

var (
	certOnce sync.Once
	certs    *testcert.Set
	certErr  error
)

func testCerts(t testing.TB) *testcert.Set {
	certOnce.Do(func() { certs, certErr = testcert.New() })
	if certErr != nil {
		t.Fatal(certErr)
	}
	return certs
}

func (tr transport) serverCreds(t testing.TB) credentials.TransportCredentials {
	if !tr.tls {
		return insecure.NewCredentials()
	}
	return credentials.NewTLS(testCerts(t).ServerConfig())
}

func (tr transport) clientCreds(t testing.TB) credentials.TransportCredentials {
	if !tr.tls {
		return insecure.NewCredentials()
	}
	return credentials.NewTLS(testCerts(t).ClientConfig("localhost"))
}

// listen opens a listener of the transport's network, closed with the test.
func (tr transport) listen(t testing.TB) net.Listener {
	t.Helper()
	var lis net.Listener
	var err error
	if tr.network == "unix" {
		// Socket paths are short; t.TempDir's are not.
		dir, derr := os.MkdirTemp("", "bcp")
		if derr != nil {
			t.Fatal(derr)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		lis, err = net.Listen("unix", filepath.Join(dir, "s"))
	} else {
		lis, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() { lis.Close() })
	return lis
}

// target is how grpc.NewClient reaches lis.
func target(lis net.Listener) string {
	if lis.Addr().Network() == "unix" {
		return "unix:" + lis.Addr().String()
	}
	return "passthrough:///" + lis.Addr().String()
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// upstream is a Gitaly-like server: a TestService behind a listenmux with
// the backchannel handshaker, so its handlers can call back into their
// caller.
type upstream struct {
	lis      net.Listener
	registry *backchannel.Registry
	server   *grpc.Server
	stopped  chan struct{}
}

// startUpstream serves svc(registry) on a new listener of tr.
func startUpstream(t testing.TB, tr transport, svc func(*backchannel.Registry) testgrpc.TestServiceServer) *upstream {
	t.Helper()
	return serveUpstream(t, tr, tr.listen(t), svc)
}

func serveUpstream(t testing.TB, tr transport, lis net.Listener, svc func(*backchannel.Registry) testgrpc.TestServiceServer) *upstream {
	t.Helper()
	u := &upstream{lis: lis, registry: backchannel.NewRegistry(), stopped: make(chan struct{})}
	mux := listenmux.New(tr.serverCreds(t))
	mux.Register(backchannel.NewServerHandshaker(nil, u.registry, nil))
	u.server = grpc.NewServer(grpc.Creds(mux))
	testgrpc.RegisterTestServiceServer(u.server, svc(u.registry))
	go func() {
		defer close(u.stopped)
		u.server.Serve(lis)
	}()
	t.Cleanup(u.stop)
	return u
}

// stop ends the upstream at once, connections and all.
func (u *upstream) stop() {
	u.server.Stop()
	<-u.stopped
}

// callerBackchannel returns the backchannel of the peer whose call ctx is.
func (u *upstream) callerBackchannel(ctx context.Context) (testgrpc.TestServiceClient, error) {
	id, err := backchannel.GetPeerID(ctx)
	if err != nil {
		return nil, err
	}
	cc, err := u.registry.Backchannel(id)
	if err != nil {
		return nil, err
	}
	return testgrpc.NewTestServiceClient(cc), nil
}

// proxyEnv is a running proxy in front of an upstream.
type proxyEnv struct {
	proxy *proxy.Proxy
	lis   net.Listener
	rec   *recorder
	tr    transport
}

// startProxy starts a proxy on a new listener of tr towards up; edit
// changes its configuration first.
func startProxy(t testing.TB, tr transport, upstreamAddr net.Addr, edit ...func(*proxy.Config)) *proxyEnv {
	t.Helper()
	rec := newRecorder()
	cfg := proxy.Config{
		UpstreamNetwork:   upstreamAddr.Network(),
		UpstreamAddress:   upstreamAddr.String(),
		UpstreamCreds:     tr.clientCreds(t),
		ListenCreds:       tr.serverCreds(t),
		Observer:          rec,
		KeepMessages:      1 << 20,
		UpstreamAuthority: "localhost",
	}
	for _, e := range edit {
		e(&cfg)
	}
	p, err := proxy.New(cfg)
	if err != nil {
		t.Fatalf("proxy.New: %v", err)
	}
	lis := tr.listen(t)
	served := make(chan error, 1)
	go func() { served <- p.Serve(lis) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := p.Shutdown(ctx); err != nil {
			t.Errorf("proxy shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("proxy serve: %v", err)
		}
	})
	return &proxyEnv{proxy: p, lis: lis, rec: rec, tr: tr}
}

// dialMux connects to lis as a multiplexed client whose backchannel
// serves svc.
func dialMux(t testing.TB, tr transport, lis net.Listener, svc testgrpc.TestServiceServer) *grpc.ClientConn {
	t.Helper()
	hs := backchannel.NewClientHandshaker(nil, func() backchannel.Server {
		srv := grpc.NewServer()
		testgrpc.RegisterTestServiceServer(srv, svc)
		return srv
	}, backchannel.DefaultConfiguration())
	return dialWith(t, lis, grpc.WithTransportCredentials(hs.ClientHandshake(tr.clientCreds(t))))
}

// dialPlain connects to lis as a plain gRPC client.
func dialPlain(t testing.TB, tr transport, lis net.Listener) *grpc.ClientConn {
	t.Helper()
	return dialWith(t, lis, grpc.WithTransportCredentials(tr.clientCreds(t)))
}

func dialWith(t testing.TB, lis net.Listener, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(target(lis), append(opts, grpc.WithAuthority("localhost"))...)
	if err != nil {
		t.Fatalf("grpc.NewClient: %v", err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// recorder is an Observer that keeps what it is told and lets tests wait
// for it.
type recorder struct {
	mu      sync.Mutex
	started []*proxy.Call
	ended   []*proxy.Call
	streams []*proxy.SideStream
	opened  []*proxy.Conn
	closed  map[uint64]proxy.Side
	changed chan struct{} // closed and replaced on every change
}

func newRecorder() *recorder {
	return &recorder{closed: map[uint64]proxy.Side{}, changed: make(chan struct{})}
}

func (r *recorder) update(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f()
	close(r.changed)
	r.changed = make(chan struct{})
}

func (r *recorder) ConnOpened(c *proxy.Conn) { r.update(func() { r.opened = append(r.opened, c) }) }
func (r *recorder) ConnClosed(c *proxy.Conn, by proxy.Side) {
	r.update(func() { r.closed[c.ID] = by })
}
func (r *recorder) CallStarted(c *proxy.Call) { r.update(func() { r.started = append(r.started, c) }) }
func (r *recorder) CallEnded(c *proxy.Call)   { r.update(func() { r.ended = append(r.ended, c) }) }
func (r *recorder) SideStreamEnded(s *proxy.SideStream) {
	r.update(func() { r.streams = append(r.streams, s) })
}

// waitFor waits until cond, checked under the recorder's lock, holds.
func (r *recorder) waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		r.mu.Lock()
		ok, ch := cond(), r.changed
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// endedCalls waits until n calls have ended and returns them in the order
// they ended.
func (r *recorder) endedCalls(t testing.TB, n int) []*proxy.Call {
	t.Helper()
	r.waitFor(t, "ended calls", func() bool { return len(r.ended) >= n })
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ended)
}

// endedCall waits for the call to method in direction dir to end.
func (r *recorder) endedCall(t testing.TB, method string, pick func(*proxy.Call) bool) *proxy.Call {
	t.Helper()
	var found *proxy.Call
	r.waitFor(t, "call to "+method, func() bool {
		for _, c := range r.ended {
			if c.Method == method && (pick == nil || pick(c)) {
				found = c
				return true
			}
		}
		return false
	})
	return found
}
