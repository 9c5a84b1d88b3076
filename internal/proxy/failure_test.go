package proxy_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/proxy"
)

// TestUpstreamDown: while the upstream is not there, clients get
// UNAVAILABLE naming it and the reason; the proxy keeps serving, and a
// client that connects once the upstream is up gets through.
func TestUpstreamDown(t *testing.T) {
	tr := transports[0]
	ctx := testContext(t)
	dir, err := os.MkdirTemp("", "bcp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "up")
	env := startProxy(t, tr, &net.UnixAddr{Net: "unix", Name: sock})

	for _, muxed := range []bool{true, false} {
		var cc *grpc.ClientConn
		if muxed {
			cc = dialMux(t, tr, env.lis, newEchoService())
		} else {
			cc = dialPlain(t, tr, env.lis)
		}
		_, err := testgrpc.NewTestServiceClient(cc).UnaryCall(ctx, payload("hello"))
		st := status.Convert(err)
		if st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "bcctl proxy: upstream unix:"+sock) || !strings.Contains(st.Message(), "no such file or directory") {
			t.Errorf("multiplexed %v: got %v; want UNAVAILABLE naming the upstream and the reason", muxed, err)
		}
	}
	for _, c := range env.rec.endedCalls(t, 2) {
		if c.EndedBy != proxy.SideUpstream || c.Gone || !c.OutStart.IsZero() && c.CalleeDuration() < 0 {
			t.Errorf("journal: ended by %q (gone %v); want the unreachable upstream", c.EndedBy, c.Gone)
		}
	}

	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	serveUpstream(t, tr, lis, func(*backchannel.Registry) testgrpc.TestServiceServer { return newEchoService() })
	cc := dialMux(t, tr, env.lis, newEchoService())
	if _, err := testgrpc.NewTestServiceClient(cc).UnaryCall(ctx, payload("hello")); err != nil {
		t.Fatalf("a new client once the upstream is up: %v", err)
	}
}

// killableDialer dials and keeps the connections, so a test can make a
// client vanish without a word.
type killableDialer struct {
	mu    sync.Mutex
	conns []net.Conn
}

func (d *killableDialer) dial(ctx context.Context, addr string) (net.Conn, error) {
	network := "tcp"
	if strings.HasPrefix(addr, "/") {
		network = "unix"
	}
	var nd net.Dialer
	c, err := nd.DialContext(ctx, network, addr)
	if err == nil {
		d.mu.Lock()
		d.conns = append(d.conns, c)
		d.mu.Unlock()
	}
	return c, err
}

func (d *killableDialer) kill() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.conns {
		c.Close()
	}
}

// TestSideGoesAway: when either side drops its connection mid-call, the
// other side's call ends promptly, and the journal says who went away.
func TestSideGoesAway(t *testing.T) {
	const bidi = "/grpc.testing.TestService/FullDuplexCall"
	tr := transports[0]

	startCall := func(t *testing.T, ctx context.Context, c testgrpc.TestServiceClient) testgrpc.TestService_FullDuplexCallClient {
		t.Helper()
		bs, err := c.FullDuplexCall(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := bs.Send(&testgrpc.StreamingOutputCallRequest{Payload: &testgrpc.Payload{Body: []byte("x")}}); err != nil {
			t.Fatal(err)
		}
		if _, err := bs.Recv(); err != nil {
			t.Fatal(err)
		}
		return bs
	}

	t.Run("client, forward call", func(t *testing.T) {
		ctx := testContext(t)
		echo := newEchoService()
		u := startUpstream(t, tr, func(*backchannel.Registry) testgrpc.TestServiceServer { return echo })
		env := startProxy(t, tr, u.lis.Addr())
		var d killableDialer
		hs := backchannel.NewClientHandshaker(nil, func() backchannel.Server { return grpc.NewServer() }, backchannel.DefaultConfiguration())
		cc := dialWith(t, env.lis, grpc.WithContextDialer(d.dial), grpc.WithTransportCredentials(hs.ClientHandshake(tr.clientCreds(t))))
		startCall(t, ctx, testgrpc.NewTestServiceClient(cc))

		d.kill()
		if got := <-echo.ended; got != "FullDuplexCall: context canceled" {
			t.Errorf("upstream's call: got %q, want it cancelled", got)
		}
		c := env.rec.endedCall(t, bidi, nil)
		if c.EndedBy != proxy.SideClient || !c.Gone || c.Status.Code() != codes.Canceled {
			t.Errorf("journal: %v ended by %q (gone %v); want CANCELED, the client gone", c.Status, c.EndedBy, c.Gone)
		}
		env.rec.waitFor(t, "the connection to close", func() bool { return len(env.rec.closed) == 1 })
		if by := env.rec.closed[c.Conn.ID]; by != proxy.SideClient {
			t.Errorf("connection closed by %q, want the client", by)
		}
	})

	t.Run("upstream, forward call", func(t *testing.T) {
		ctx := testContext(t)
		u := startUpstream(t, tr, func(*backchannel.Registry) testgrpc.TestServiceServer { return newEchoService() })
		env := startProxy(t, tr, u.lis.Addr())
		cc := dialMux(t, tr, env.lis, newEchoService())
		bs := startCall(t, ctx, testgrpc.NewTestServiceClient(cc))

		u.stop()
		if _, err := bs.Recv(); status.Code(err) != codes.Unavailable {
			t.Errorf("client's call: got %v, want UNAVAILABLE", err)
		}
		c := env.rec.endedCall(t, bidi, nil)
		if c.EndedBy != proxy.SideUpstream || !c.Gone {
			t.Errorf("journal: %v ended by %q (gone %v); want the upstream gone", c.Status, c.EndedBy, c.Gone)
		}
	})

	t.Run("client, reverse call", func(t *testing.T) {
		ctx := testContext(t)
		reverseEnded := make(chan error, 1)
		started := make(chan struct{})
		var u *upstream
		u = startUpstream(t, tr, func(*backchannel.Registry) testgrpc.TestServiceServer {
			return &funcService{unary: func(ctx context.Context, _ *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
				bc, err := u.callerBackchannel(ctx)
				if err != nil {
					return nil, err
				}
				bs := startCall(t, ctx, bc)
				close(started)
				_, err = bs.Recv()
				reverseEnded <- err
				return payloadResponse("done"), nil
			}}
		})
		env := startProxy(t, tr, u.lis.Addr())
		var d killableDialer
		hs := backchannel.NewClientHandshaker(nil, func() backchannel.Server {
			srv := grpc.NewServer()
			testgrpc.RegisterTestServiceServer(srv, newEchoService())
			return srv
		}, backchannel.DefaultConfiguration())
		cc := dialWith(t, env.lis, grpc.WithContextDialer(d.dial), grpc.WithTransportCredentials(hs.ClientHandshake(tr.clientCreds(t))))
		callErr := make(chan error, 1)
		go func() {
			_, err := testgrpc.NewTestServiceClient(cc).UnaryCall(ctx, payload("go"))
			callErr <- err
		}()
		<-started
		d.kill()
		if err := <-reverseEnded; status.Code(err) != codes.Unavailable && status.Code(err) != codes.Canceled {
			t.Errorf("upstream's reverse call: got %v, want UNAVAILABLE or CANCELED", err)
		}
		if err := <-callErr; err == nil {
			t.Errorf("the vanished client's call succeeded")
		}
		c := env.rec.endedCall(t, bidi, func(c *proxy.Call) bool { return c.Dir == calls.Reverse })
		if c.EndedBy != proxy.SideClient || !c.Gone {
			t.Errorf("journal: %v ended by %q (gone %v); want the client gone", c.Status, c.EndedBy, c.Gone)
		}
	})
}

// funcService answers UnaryCall with a function.
type funcService struct {
	testgrpc.UnimplementedTestServiceServer
	unary func(context.Context, *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error)
}

func (s *funcService) UnaryCall(ctx context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	return s.unary(ctx, req)
}

// TestBadClients: clients that send garbage, or stop half way through the
// handshake, do not disturb a good client.
func TestBadClients(t *testing.T) {
	tr := transports[0]
	ctx := testContext(t)
	u := startUpstream(t, tr, func(*backchannel.Registry) testgrpc.TestServiceServer { return newEchoService() })
	env := startProxy(t, tr, u.lis.Addr())

	for _, junk := range []string{"GET / HTTP/1.1\r\n\r\n", "backc", "backchannel garbage that is not yamux at all"} {
		c, err := net.Dial("tcp", env.lis.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := c.Write([]byte(junk)); err != nil {
			t.Fatal(err)
		}
	}
	client := testgrpc.NewTestServiceClient(dialMux(t, tr, env.lis, newEchoService()))
	if err := exercise(ctx, client); err != nil {
		t.Fatalf("a good client next to bad ones: %v", err)
	}
}
