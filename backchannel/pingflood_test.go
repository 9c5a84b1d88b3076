package backchannel_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/hashicorp/yamux"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
)

// The bounds a ping flood must stay within, above what the process used
// before the flooding peer connected. yamux answers each admitted ping from
// a goroutine of its own, so at most backchannel.PingBurst goroutines come
// from pings; the rest is the connection itself (yamux's receive and send
// loops, gRPC's handshake, the test's own reader).
const (
	floodPings          = 600_000
	floodGoroutineBound = backchannel.PingBurst + 16
	floodHeapBound      = 8 << 20 // during the flood, garbage included
	floodHeapAfterBound = 1 << 20 // live heap once the peer is gone
)

const framePing = 2

// http2Preface is what a gRPC client sends first on its connection.
const http2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// TestPingFloodServerSide plays a client that completes the handshake,
// sends the HTTP/2 preface on stream 1 and then floods yamux pings without
// reading: the server drops it after its ping budget, and goroutines and
// heap stay bounded before, during and after.
func TestPingFloodServerSide(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		srv := startServer(t, tr, newReverseService)
		base := takeBaseline()

		conn, err := rawDial(t, tr, srv.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		opening := appendFrame([]byte("backchannel"), yamuxFrame{typ: frameWindowUpdate, flags: flagSYN, stream: 1})
		opening = appendData(opening, 1, []byte(http2Preface))
		if _, err := conn.Write(opening); err != nil {
			t.Fatalf("write handshake: %v", err)
		}

		floodAndCheck(t, conn, base)
		if n := srv.registry.Len(); n != 0 {
			t.Errorf("registry holds %d peers after the flooding peer was dropped", n)
		}
	})
}

// TestPingFloodClientSide plays a server that accepts a multiplexing
// client and floods it with yamux pings without reading: the client drops
// the connection after the ping budget, within the same bounds.
func TestPingFloodClientSide(t *testing.T) {
	lis := listen(t)
	base := takeBaseline()

	accepted := make(chan net.Conn, 1)
	go func() {
		conn, err := lis.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- conn
	}()
	raw, err := net.Dial("tcp", lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	creds := backchannel.NewClientHandshaker(nil, func() backchannel.Server { return grpc.NewServer() }, backchannel.DefaultConfiguration()).
		ClientHandshake(insecureCreds())
	muxed, _, err := creds.ClientHandshake(testContext(t), "127.0.0.1", raw)
	if err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	defer muxed.Close()

	server, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	defer server.Close()
	magic := make([]byte, len("backchannel"))
	if _, err := io.ReadFull(server, magic); err != nil {
		t.Fatalf("read magic: %v", err)
	}
	floodAndCheck(t, server, base)
}

// TestPingsWithinBudgetAreAnswered pings over a live connection in both
// directions, as yamux's keepalive or a user of GetYamuxSession would: the
// pings are answered and nobody is dropped.
func TestPingsWithinBudgetAreAnswered(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		serverSessions := make(chan *yamux.Session, 1)
		srv := startServer(t, tr, func(*backchannel.Registry) testgrpc.TestServiceServer {
			return &sessionService{sessions: serverSessions}
		})
		clientSessions := make(chan *yamux.Session, 1)
		handshaker := backchannel.NewClientHandshaker(nil, func() backchannel.Server {
			return &sessionCapture{Server: grpc.NewServer(), sessions: clientSessions}
		}, backchannel.DefaultConfiguration())
		cc := dial(t, srv.addr, grpc.WithTransportCredentials(handshaker.ClientHandshake(tr.client(t))))
		ctx := testContext(t)
		if _, err := testgrpc.NewTestServiceClient(cc).EmptyCall(ctx, &testgrpc.Empty{}); err != nil {
			t.Fatalf("forward call: %v", err)
		}
		sessions := map[string]*yamux.Session{"server": <-serverSessions, "client": <-clientSessions}

		for i := range backchannel.PingBurst {
			for name, session := range sessions {
				if _, err := session.Ping(); err != nil {
					t.Fatalf("%s's ping %d: %v", name, i, err)
				}
			}
		}
		if _, err := testgrpc.NewTestServiceClient(cc).EmptyCall(ctx, &testgrpc.Empty{}); err != nil {
			t.Errorf("forward call after the pings: %v", err)
		}
	})
}

// sessionService hands out the yamux session of each EmptyCall's caller.
type sessionService struct {
	testgrpc.UnimplementedTestServiceServer
	sessions chan *yamux.Session
}

func (s *sessionService) EmptyCall(ctx context.Context, _ *testgrpc.Empty) (*testgrpc.Empty, error) {
	session, err := backchannel.GetYamuxSession(ctx)
	if err != nil {
		return nil, err
	}
	select {
	case s.sessions <- session:
	default:
	}
	return &testgrpc.Empty{}, nil
}

// sessionCapture is a backchannel server that hands out the client's yamux
// session, which is the listener it serves.
type sessionCapture struct {
	backchannel.Server
	sessions chan *yamux.Session
}

func (s *sessionCapture) Serve(lis net.Listener) error {
	if session, ok := lis.(*yamux.Session); ok {
		s.sessions <- session
	}
	return s.Server.Serve(lis)
}

// baseline is what the process used before a test's hostile peer came.
type baseline struct {
	goroutines int
	heap       uint64
	leaks      goleak.Option
}

func takeBaseline() baseline {
	runtime.GC()
	return baseline{goroutines: runtime.NumGoroutine(), heap: heapAfterGC(), leaks: goleak.IgnoreCurrent()}
}

// floodAndCheck writes floodPings yamux ping requests to conn in chunks,
// never reading, and samples goroutines and heap after each chunk. The
// other side must drop the connection (a write fails, or reading ends)
// with every sample within the bounds, and afterwards everything the
// connection held must be released.
func floodAndCheck(t *testing.T, conn net.Conn, base baseline) {
	t.Helper()
	const chunkPings = 1024
	chunk := make([]byte, 0, chunkPings*12)
	for i := range chunkPings {
		chunk = appendFrame(chunk, yamuxFrame{typ: framePing, flags: flagSYN, length: uint32(i)})
	}

	// A peer that is never dropped would block this write once the
	// buffers are full; the deadline only guards against a hang.
	conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	var sent int
	var writeErr error
	peakGoroutines, peakHeap := 0, uint64(0)
	for sent < floodPings && writeErr == nil {
		_, writeErr = conn.Write(chunk)
		if writeErr == nil {
			sent += chunkPings
		}
		g, h := sampleResources()
		peakGoroutines, peakHeap = max(peakGoroutines, g), max(peakHeap, h)
		if g-base.goroutines > floodGoroutineBound {
			t.Fatalf("after %d pings: %d goroutines, %d more than before (bound %d)", sent, g, g-base.goroutines, floodGoroutineBound)
		}
	}
	var netErr net.Error
	if errors.As(writeErr, &netErr) && netErr.Timeout() {
		t.Fatalf("the flooding peer was never dropped: writes blocked after %d pings", sent)
	}
	if writeErr == nil {
		// Everything fitted into the socket buffers: the drop shows as
		// the end of the stream.
		conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		if _, err := io.Copy(io.Discard, conn); errors.As(err, &netErr) && netErr.Timeout() {
			t.Fatalf("the flooding peer was never dropped after %d pings", sent)
		}
	}
	t.Logf("dropped after %d pings written; peak %d goroutines (%+d), heap %d KiB (%+d KiB)",
		sent, peakGoroutines, peakGoroutines-base.goroutines, peakHeap>>10, (int64(peakHeap)-int64(base.heap))>>10)
	if grown := int64(peakHeap) - int64(base.heap); grown > floodHeapBound {
		t.Errorf("heap grew by %d KiB during the flood, bound %d KiB", grown>>10, floodHeapBound>>10)
	}

	conn.Close()
	if err := goleak.Find(base.leaks); err != nil {
		t.Errorf("goroutines left after the flooding peer was dropped: %v", err)
	}
	if grown := int64(heapAfterGC()) - int64(base.heap); grown > floodHeapAfterBound {
		t.Errorf("live heap after the flood is %d KiB above the baseline, bound %d KiB", grown>>10, floodHeapAfterBound>>10)
	}
}

var resourceMetrics = []metrics.Sample{
	{Name: "/sched/goroutines:goroutines"},
	{Name: "/memory/classes/heap/objects:bytes"},
}

// sampleResources returns the number of goroutines and the bytes of heap
// objects (live and not yet collected), without stopping the world.
func sampleResources() (int, uint64) {
	metrics.Read(resourceMetrics)
	return int(resourceMetrics[0].Value.Uint64()), resourceMetrics[1].Value.Uint64()
}

// heapAfterGC returns the live heap after two collections.
func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// appendFrame appends a yamux frame header to b.
func appendFrame(b []byte, f yamuxFrame) []byte {
	var hdr [12]byte
	hdr[1] = f.typ
	binary.BigEndian.PutUint16(hdr[2:4], f.flags)
	binary.BigEndian.PutUint32(hdr[4:8], f.stream)
	binary.BigEndian.PutUint32(hdr[8:12], f.length)
	return append(b, hdr[:]...)
}
