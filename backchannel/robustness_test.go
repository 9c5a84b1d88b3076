package backchannel_test

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/bcctl/bcctl/backchannel"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
)

// TestBadClientsAreDropped connects clients that break the protocol next
// to good clients. Each bad client is dropped: the ones that stall within
// grpc.ConnectionTimeout, the one that sends garbage at once. Good clients
// are not disturbed.
func TestBadClientsAreDropped(t *testing.T) {
	// Long enough for a TLS handshake on a loaded machine, which also
	// runs within this timeout.
	const connectionTimeout = 2 * time.Second
	badClients := []struct {
		name  string
		sends []byte
	}{
		{name: "five bytes then stall", sends: []byte("backc")},
		{name: "magic then garbage", sends: []byte("backchannel\xff\xfe garbage that is no yamux frame")},
		{name: "magic then nothing", sends: []byte("backchannel")},
		{name: "magic then half a yamux header", sends: []byte("backchannel\x00\x01\x00")},
	}

	forEachTransport(t, func(t *testing.T, tr transport) {
		srv := startServer(t, tr, newReverseService, grpc.ConnectionTimeout(connectionTimeout))
		ctx := testContext(t)

		var wg sync.WaitGroup
		for _, bc := range badClients {
			wg.Go(func() {
				conn, err := rawDial(t, tr, srv.addr)
				if err != nil {
					t.Errorf("%s: %v", bc.name, err)
					return
				}
				defer conn.Close()
				if _, err := conn.Write(bc.sends); err != nil {
					t.Errorf("%s: write: %v", bc.name, err)
					return
				}
				// The server must close the connection; the test's own
				// deadline only guards against a hang.
				conn.SetReadDeadline(time.Now().Add(30 * time.Second))
				_, err = io.Copy(io.Discard, conn)
				var netErr net.Error
				if errors.As(err, &netErr) && netErr.Timeout() {
					t.Errorf("%s: server did not drop the connection", bc.name)
				}
			})
		}

		// Good clients work while the bad ones are connected.
		for i := range 4 {
			wg.Go(func() {
				cc := dialMuxed(t, tr, srv.addr, &namedService{name: "good"})
				for range 10 {
					resp, err := testgrpc.NewTestServiceClient(cc).UnaryCall(ctx, payloadRequest("x"))
					if err != nil {
						t.Errorf("good client %d: %v", i, err)
						return
					}
					if got := string(resp.GetPayload().GetBody()); got != "good:x" {
						t.Errorf("good client %d: got %q", i, got)
					}
				}
			})
		}
		wg.Wait()
	})
}

// rawDial opens a connection to addr and runs the transport's client
// handshake on it, without gRPC. It may run outside the test's goroutine.
func rawDial(t testing.TB, tr transport, addr string) (net.Conn, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	if tr.name != "tls" {
		return conn, nil
	}
	tlsConn := tls.Client(conn, &tls.Config{RootCAs: testCert(t).pool, ServerName: "127.0.0.1", NextProtos: []string{"h2"}})
	if err := tlsConn.Handshake(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("tls handshake: %w", err)
	}
	return tlsConn, nil
}

// soak makes the soak tests run at full length:
//
//	go test -race -run ConnectDisconnectCycles ./backchannel -soak
var soak = flag.Bool("soak", false, "run the soak tests at full length (1,000 connect/disconnect cycles per transport)")

// TestConnectDisconnectCycles connects, calls forward and backward, and
// disconnects over and over; afterwards the registry is empty and no
// goroutine is left behind. A single cycle that leaks fails it, so the
// default 50 cycles prove the property; -soak runs 1,000 (16 s) to shake out
// rarer races.
func TestConnectDisconnectCycles(t *testing.T) {
	cycles := 50
	switch {
	case *soak:
		cycles = 1000
	case testing.Short():
		cycles = 10
	}
	forEachTransport(t, func(t *testing.T, tr transport) {
		srv := startServer(t, tr, newReverseService)
		watchCtx, stopWatch := context.WithCancel(context.Background())
		defer stopWatch()
		_, events := srv.registry.Watch(watchCtx)
		baseline := goleak.IgnoreCurrent()

		for i := range cycles {
			// Each cycle has its own bound: a slow machine makes the
			// whole run long, not a cycle.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			cc, err := grpc.NewClient("passthrough:///"+srv.addr, grpc.WithTransportCredentials(
				backchannel.NewClientHandshaker(nil, func() backchannel.Server {
					s := grpc.NewServer()
					testgrpc.RegisterTestServiceServer(s, &namedService{name: "cycle"})
					return s
				}, backchannel.DefaultConfiguration()).ClientHandshake(tr.client(t))))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := testgrpc.NewTestServiceClient(cc).UnaryCall(ctx, payloadRequest("x")); err != nil {
				t.Fatalf("cycle %d: %v", i, err)
			}
			if err := cc.Close(); err != nil {
				t.Fatalf("cycle %d: close: %v", i, err)
			}
			waitForEvent(t, ctx, events, backchannel.PeerJoined)
			waitForEvent(t, ctx, events, backchannel.PeerLeft)
			cancel()
		}

		if n := srv.registry.Len(); n != 0 {
			t.Errorf("registry holds %d peers after every client left", n)
		}
		if err := goleak.Find(baseline); err != nil {
			t.Errorf("goroutines left after %d cycles: %v", cycles, err)
		}
	})
}

// TestCloseIsIdempotent closes both ends of a multiplexed connection twice,
// concurrently, as gRPC may: every Close returns and the peer leaves the
// registry once.
func TestCloseIsIdempotent(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		lis := listen(t)
		registry := backchannel.NewRegistry()
		mux := newMux(tr.server(t), registry)
		ctx := testContext(t)
		_, events := registry.Watch(ctx)

		type result struct {
			conn net.Conn
			err  error
		}
		accepted := make(chan result, 1)
		go func() {
			raw, err := lis.Accept()
			if err != nil {
				accepted <- result{err: err}
				return
			}
			conn, _, err := mux.ServerHandshake(raw)
			accepted <- result{conn: conn, err: err}
		}()

		raw, err := net.Dial("tcp", lis.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		creds := backchannel.NewClientHandshaker(nil, func() backchannel.Server { return grpc.NewServer() }, backchannel.DefaultConfiguration()).
			ClientHandshake(tr.client(t))
		clientConn, _, err := creds.ClientHandshake(ctx, "127.0.0.1", raw)
		if err != nil {
			t.Fatalf("client handshake: %v", err)
		}
		server := <-accepted
		if server.err != nil {
			t.Fatalf("server handshake: %v", server.err)
		}
		// The peer joins when the server has read its HTTP/2 preface.
		if _, err := clientConn.Write([]byte(http2Preface)); err != nil {
			t.Fatalf("write preface: %v", err)
		}
		if _, err := io.ReadFull(server.conn, make([]byte, len(http2Preface))); err != nil {
			t.Fatalf("read preface: %v", err)
		}
		waitForEvent(t, ctx, events, backchannel.PeerJoined)

		for _, conn := range []net.Conn{server.conn, clientConn} {
			var wg sync.WaitGroup
			for range 2 {
				wg.Go(func() {
					if err := conn.Close(); err != nil {
						t.Errorf("Close: %v", err)
					}
				})
			}
			wg.Wait()
			if err := conn.Close(); err != nil {
				t.Errorf("third Close: %v", err)
			}
		}
		waitForEvent(t, ctx, events, backchannel.PeerLeft)
		if n := registry.Len(); n != 0 {
			t.Errorf("registry holds %d peers after Close", n)
		}
	})
}

// TestClientHandshakeHonoursDeadline checks that the magic write is bound
// by the context's deadline: a server that never reads cannot hold the
// handshake past it.
func TestClientHandshakeHonoursDeadline(t *testing.T) {
	client, server := net.Pipe() // unbuffered: a write blocks until read
	defer server.Close()

	creds := backchannel.NewClientHandshaker(nil, func() backchannel.Server { return grpc.NewServer() }, backchannel.DefaultConfiguration()).
		ClientHandshake(insecureCreds())
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, _, err := creds.ClientHandshake(ctx, "127.0.0.1", client)
	var netErr net.Error
	if !errors.As(err, &netErr) || !netErr.Timeout() {
		t.Fatalf("handshake against a server that never reads = %v, want a timeout", err)
	}
}

// TestClientHandshakeClearsDeadline checks that the connection has no
// deadline left after a handshake with a deadline.
func TestClientHandshakeClearsDeadline(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	go io.Copy(io.Discard, server)

	recorder := &deadlineRecorder{Conn: client}
	creds := backchannel.NewClientHandshaker(nil, func() backchannel.Server { return grpc.NewServer() }, backchannel.DefaultConfiguration()).
		ClientHandshake(insecureCreds())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, _, err := creds.ClientHandshake(ctx, "127.0.0.1", recorder)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	defer conn.Close()

	recorder.mu.Lock()
	defer recorder.mu.Unlock()
	if len(recorder.deadlines) < 2 {
		t.Fatalf("deadlines set = %v, want the context's and then none", recorder.deadlines)
	}
	if first := recorder.deadlines[0]; first.IsZero() {
		t.Errorf("first deadline is zero, want the context's deadline")
	}
	if last := recorder.deadlines[len(recorder.deadlines)-1]; !last.IsZero() {
		t.Errorf("last deadline = %v, want it cleared", last)
	}
}

type deadlineRecorder struct {
	net.Conn
	mu        sync.Mutex
	deadlines []time.Time
}

func (d *deadlineRecorder) SetWriteDeadline(t time.Time) error {
	d.mu.Lock()
	d.deadlines = append(d.deadlines, t)
	d.mu.Unlock()
	return d.Conn.SetWriteDeadline(t)
}

func (d *deadlineRecorder) SetDeadline(t time.Time) error {
	return d.SetWriteDeadline(t)
}

// TestPeerLeavesWhenItHangsUpAfterHandshake covers a client that completes
// the multiplexing handshake (magic, stream 1, the HTTP/2 preface) and
// hangs up before gRPC has started: grpc-go then closes only the raw
// connection, and the peer must still leave the registry.
func TestPeerLeavesWhenItHangsUpAfterHandshake(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		srv := startServer(t, tr, newReverseService)
		ctx := testContext(t)
		_, events := srv.registry.Watch(ctx)

		conn, err := rawDial(t, tr, srv.addr)
		if err != nil {
			t.Fatal(err)
		}
		opening := appendFrame([]byte("backchannel"), yamuxFrame{typ: frameWindowUpdate, flags: flagSYN, stream: 1})
		opening = appendData(opening, 1, []byte(http2Preface))
		if _, err := conn.Write(opening); err != nil {
			t.Fatal(err)
		}
		waitForEvent(t, ctx, events, backchannel.PeerJoined)
		writeFrame(t, conn, yamuxFrame{typ: frameWindowUpdate, flags: flagRST, stream: 1})
		waitForEvent(t, ctx, events, backchannel.PeerLeft)
		conn.Close()
	})
}

// TestPeerJoinsAfterItsPreface connects clients that stop at each step of
// the handshake next to a real client: only the real one, and a client
// once it sends its HTTP/2 preface, are ever in the registry, and a client
// that hangs up before its preface never joins or leaves.
func TestPeerJoinsAfterItsPreface(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		srv := startServer(t, tr, newReverseService)
		ctx := testContext(t)
		_, events := srv.registry.Watch(ctx)

		silent := make([]net.Conn, 0, 3)
		for _, opening := range [][]byte{
			[]byte("backchannel"),
			appendFrame([]byte("backchannel"), yamuxFrame{typ: frameWindowUpdate, flags: flagSYN, stream: 1}),
			appendData(appendFrame([]byte("backchannel"), yamuxFrame{typ: frameWindowUpdate, flags: flagSYN, stream: 1}), 1, []byte(http2Preface[:20])),
		} {
			conn, err := rawDial(t, tr, srv.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.Write(opening); err != nil {
				t.Fatal(err)
			}
			silent = append(silent, conn)
		}
		// A client that hangs up before its preface: no event at all.
		quitter, err := rawDial(t, tr, srv.addr)
		if err != nil {
			t.Fatal(err)
		}
		quitter.Write(appendFrame([]byte("backchannel"), yamuxFrame{typ: frameWindowUpdate, flags: flagSYN, stream: 1}))
		quitter.Close()

		// The real client is the first to join.
		cc := dialMuxed(t, tr, srv.addr, &namedService{name: "real"})
		if _, err := testgrpc.NewTestServiceClient(cc).UnaryCall(ctx, payloadRequest("x")); err != nil {
			t.Fatalf("real client: %v", err)
		}
		real := waitForEvent(t, ctx, events, backchannel.PeerJoined)
		if n := srv.registry.Len(); n != 1 {
			t.Errorf("registry holds %d peers with one real client and %d silent ones, want 1", n, len(silent))
		}

		// The client that stopped within its preface finishes it: it joins.
		last := silent[len(silent)-1]
		if _, err := last.Write(appendData(nil, 1, []byte(http2Preface[20:]))); err != nil {
			t.Fatal(err)
		}
		late := waitForEvent(t, ctx, events, backchannel.PeerJoined)
		if late.Peer.ID == real.Peer.ID || late.Peer.RemoteAddr.String() != last.LocalAddr().String() {
			t.Errorf("joined: peer %d from %v, want the late client from %v", late.Peer.ID, late.Peer.RemoteAddr, last.LocalAddr())
		}
		last.Close()
		if left := waitForEvent(t, ctx, events, backchannel.PeerLeft); left.Peer.ID != late.Peer.ID {
			t.Errorf("left: peer %d, want %d", left.Peer.ID, late.Peer.ID)
		}
	})
}

// appendData appends a yamux data frame with body on stream to b.
func appendData(b []byte, stream uint32, body []byte) []byte {
	b = appendFrame(b, yamuxFrame{typ: frameData, stream: stream, length: uint32(len(body))})
	return append(b, body...)
}

// TestPeerLeavesWhenSessionEnds hands the connection from a successful
// handshake to nobody but a reader of the preface: when the peer hangs up,
// the session ends and the peer must leave the registry even though no one
// called Close (grpc-go closes only the raw connection when its transport
// fails to start).
func TestPeerLeavesWhenSessionEnds(t *testing.T) {
	registry := backchannel.NewRegistry()
	handshaker := backchannel.NewServerHandshaker(nil, registry, nil)
	ctx := testContext(t)
	_, events := registry.Watch(ctx)

	client, server := net.Pipe()
	acked := make(chan struct{})
	go func() {
		defer close(acked)
		writeFrame(t, client, yamuxFrame{typ: frameWindowUpdate, flags: flagSYN, stream: 1})
		readFrame(t, client)
		client.Write(appendData(nil, 1, []byte(http2Preface)))
	}()
	conn, _, err := handshaker.Handshake(server, nil)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	if _, err := io.ReadFull(conn, make([]byte, len(http2Preface))); err != nil {
		t.Fatalf("read preface: %v", err)
	}
	<-acked
	waitForEvent(t, ctx, events, backchannel.PeerJoined)
	client.Close()
	waitForEvent(t, ctx, events, backchannel.PeerLeft)
}

// errServeFailed is what failingServer's Serve returns.
var errServeFailed = errors.New("the backchannel server cannot serve")

// failingServer is a backchannel server whose Serve fails at once.
type failingServer struct{}

func (failingServer) Serve(net.Listener) error { return errServeFailed }
func (failingServer) Stop()                    {}

// TestCloseReturnsServeError checks that the client connection's Close
// returns the error the backchannel server's Serve failed with, as Gitaly's
// does, and that every later Close returns the same; a server that ends
// because the connection closed makes Close return nil.
func TestCloseReturnsServeError(t *testing.T) {
	tests := []struct {
		name    string
		factory backchannel.ServerFactory
		want    error
	}{
		{"serve fails", func() backchannel.Server { return failingServer{} }, errServeFailed},
		{"serve ends with the connection", func() backchannel.Server { return grpc.NewServer() }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, server := net.Pipe()
			defer server.Close()
			go io.Copy(io.Discard, server)
			// The failure is logged when Serve returns: wait for it, so
			// that Close does not race the failure it should report.
			logged := &signalHandler{msg: "backchannel server stopped", seen: make(chan struct{})}
			creds := backchannel.NewClientHandshaker(slog.New(logged), tt.factory, backchannel.DefaultConfiguration()).ClientHandshake(insecureCreds())
			conn, _, err := creds.ClientHandshake(testContext(t), "127.0.0.1", client)
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			if tt.want != nil {
				<-logged.seen
			}
			for i := range 3 {
				err := conn.Close()
				if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
					t.Errorf("Close #%d = %v, want %v", i+1, err, tt.want)
				}
			}
		})
	}
}

// signalHandler is a slog.Handler that closes seen at the first record
// with message msg.
type signalHandler struct {
	msg  string
	seen chan struct{}
	once sync.Once
}

func (h *signalHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *signalHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *signalHandler) WithGroup(string) slog.Handler            { return h }
func (h *signalHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.once.Do(func() { close(h.seen) })
	}
	return nil
}
