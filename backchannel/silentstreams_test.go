package backchannel_test

import (
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/listenmux"
	"github.com/hashicorp/yamux"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
)

// TestSilentServerStreamsAreBoundedWhenRouting plays a server that opens
// 5,000 streams to a client that routes streams (WithStreamHandshaker)
// and sends nothing on them: the client reads at most MaxRoutingStreams
// of them at once, the rest wait in yamux's backlog or are reset, and
// when the server closes them every goroutine is given back.
func TestSilentServerStreamsAreBoundedWhenRouting(t *testing.T) {
	const streams = 5000
	// The routing goroutines, and the server transport of the forward
	// call that shows the client has seen every stream.
	const goroutineBound = backchannel.MaxRoutingStreams + 8

	lis := listen(t)
	registry := backchannel.NewRegistry()
	mux := listenmux.New(insecureCreds())
	// A hostile server opens streams without waiting for them to be
	// acknowledged, and this one keeps no timer per stream either (so
	// that the goroutines counted are the client's).
	mux.Register(backchannel.NewServerHandshaker(nil, registry, nil,
		backchannel.WithServerConfiguration(backchannel.Configuration{AcceptBacklog: 1 << 20, StreamOpenTimeout: -1})))
	srv := grpc.NewServer(grpc.Creds(mux))
	sessions := make(chan *yamux.Session, 1)
	testgrpc.RegisterTestServiceServer(srv, &sessionService{sessions: sessions})
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)

	h := &lineHandshaker{}
	handshaker := backchannel.NewClientHandshaker(nil, func() backchannel.Server { return grpc.NewServer() },
		backchannel.DefaultConfiguration(), backchannel.WithStreamHandshaker(h))
	cc := dial(t, lis.Addr().String(), grpc.WithTransportCredentials(handshaker.ClientHandshake(insecureCreds())))
	client := testgrpc.NewTestServiceClient(cc)
	ctx := testContext(t)
	if _, err := client.EmptyCall(ctx, &testgrpc.Empty{}); err != nil {
		t.Fatal(err)
	}
	session := <-sessions
	runtime.GC()
	baseGoroutines, baseline := runtime.NumGoroutine(), goleak.IgnoreCurrent()

	opened := make([]net.Conn, 0, streams)
	for range streams {
		s, err := session.Open()
		if err != nil {
			t.Fatalf("open stream %d: %v", len(opened), err)
		}
		opened = append(opened, s)
	}
	// Frames arrive in order: once this call is answered, the client has
	// seen every stream open.
	if _, err := client.EmptyCall(ctx, &testgrpc.Empty{}); err != nil {
		t.Fatal(err)
	}
	during := runtime.NumGoroutine() - baseGoroutines
	t.Logf("%d silent streams: %+d goroutines", streams, during)
	if during > goroutineBound {
		t.Errorf("%d silent streams cost %d goroutines, bound %d", streams, during, goroutineBound)
	}

	for _, s := range opened {
		s.Close()
	}
	if err := goleak.Find(baseline); err != nil {
		t.Errorf("goroutines left after the server closed its streams: %v", err)
	}
}

// TestRoutedStreamHandshakeTimeout plays a server that opens a stream and
// sends nothing on it, to a client that routes streams with a short
// WithStreamHandshakeTimeout: the client closes the stream once the
// timeout passes and reports it to the option's onTimeout.
func TestRoutedStreamHandshakeTimeout(t *testing.T) {
	lis := listen(t)
	registry := backchannel.NewRegistry()
	mux := listenmux.New(insecureCreds())
	mux.Register(backchannel.NewServerHandshaker(nil, registry, nil))
	srv := grpc.NewServer(grpc.Creds(mux))
	sessions := make(chan *yamux.Session, 1)
	testgrpc.RegisterTestServiceServer(srv, &sessionService{sessions: sessions})
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)

	timeouts := make(chan struct{}, 1)
	handshaker := backchannel.NewClientHandshaker(nil, func() backchannel.Server { return grpc.NewServer() },
		backchannel.DefaultConfiguration(), backchannel.WithStreamHandshaker(&lineHandshaker{}),
		backchannel.WithStreamHandshakeTimeout(100*time.Millisecond, func() { timeouts <- struct{}{} }))
	cc := dial(t, lis.Addr().String(), grpc.WithTransportCredentials(handshaker.ClientHandshake(insecureCreds())))
	ctx := testContext(t)
	if _, err := testgrpc.NewTestServiceClient(cc).EmptyCall(ctx, &testgrpc.Empty{}); err != nil {
		t.Fatal(err)
	}
	stream, err := (<-sessions).Open()
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	deadline, _ := ctx.Deadline()
	stream.SetReadDeadline(deadline)
	if _, err := io.Copy(io.Discard, stream); err != nil {
		t.Fatalf("reading the silent stream: %v, want the client to close it", err)
	}
	select {
	case <-timeouts:
	case <-ctx.Done():
		t.Fatal("the client closed the silent stream but did not report the timeout")
	}
}
