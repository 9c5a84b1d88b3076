package backchannel_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/bcctl/bcctl/backchannel"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

// TestMixedClients runs multiplexed and plain clients against one listener
// at once. Every reverse call must reach the backchannel of the client whose
// forward call caused it, and plain clients must see
// ErrNonMultiplexedConnection.
func TestMixedClients(t *testing.T) {
	const (
		muxedClients   = 25
		plainClients   = 25
		callsPerClient = 8
	)
	forEachTransport(t, func(t *testing.T, tr transport) {
		srv := startServer(t, tr, newReverseService)
		ctx := testContext(t)

		var wg sync.WaitGroup
		errs := make(chan error, (muxedClients+plainClients)*callsPerClient)
		for i := range muxedClients {
			name := fmt.Sprintf("muxed-%d", i)
			client := testgrpc.NewTestServiceClient(dialMuxed(t, tr, srv.addr, &namedService{name: name}))
			for j := range callsPerClient {
				wg.Go(func() {
					body := fmt.Sprintf("call-%d", j)
					resp, err := client.UnaryCall(ctx, payloadRequest(body))
					if err != nil {
						errs <- fmt.Errorf("%s %s: %w", name, body, err)
						return
					}
					if got, want := string(resp.GetPayload().GetBody()), name+":"+body; got != want {
						errs <- fmt.Errorf("%s: reverse call answered by %q, want %q", name, got, want)
					}
				})
			}
		}
		for i := range plainClients {
			client := testgrpc.NewTestServiceClient(dialPlain(t, tr, srv.addr))
			for range callsPerClient {
				wg.Go(func() {
					resp, err := client.UnaryCall(ctx, payloadRequest("x"))
					if err != nil {
						errs <- fmt.Errorf("plain-%d: %w", i, err)
						return
					}
					if got, want := string(resp.GetPayload().GetBody()), "plain: "+backchannel.ErrNonMultiplexedConnection.Error(); got != want {
						errs <- fmt.Errorf("plain-%d: got %q, want %q", i, got, want)
					}
				})
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if got := srv.registry.Len(); got != muxedClients {
			t.Errorf("registry holds %d peers, want %d (one per multiplexed client)", got, muxedClients)
		}
	})
}

// TestPeerIDsAreSequential checks that IDs start at 1 and are not reused
// after a peer leaves.
func TestPeerIDsAreSequential(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		var (
			mu  sync.Mutex
			ids []backchannel.ID
		)
		srv := startServer(t, tr, func(*backchannel.Registry) testgrpc.TestServiceServer {
			return &peerIDService{record: func(id backchannel.ID) { mu.Lock(); ids = append(ids, id); mu.Unlock() }}
		})
		ctx := testContext(t)
		_, events := srv.registry.Watch(ctx)

		for range 3 {
			cc := dialMuxed(t, tr, srv.addr, &namedService{})
			if _, err := testgrpc.NewTestServiceClient(cc).EmptyCall(ctx, &testgrpc.Empty{}); err != nil {
				t.Fatalf("EmptyCall: %v", err)
			}
			cc.Close()
			waitForEvent(t, ctx, events, backchannel.PeerJoined)
			waitForEvent(t, ctx, events, backchannel.PeerLeft)
		}

		want := []backchannel.ID{1, 2, 3}
		if fmt.Sprint(ids) != fmt.Sprint(want) {
			t.Errorf("peer IDs = %v, want %v", ids, want)
		}
	})
}

type peerIDService struct {
	testgrpc.UnimplementedTestServiceServer
	record func(backchannel.ID)
}

func (s *peerIDService) EmptyCall(ctx context.Context, _ *testgrpc.Empty) (*testgrpc.Empty, error) {
	id, err := backchannel.GetPeerID(ctx)
	if err != nil {
		return nil, err
	}
	s.record(id)
	return &testgrpc.Empty{}, nil
}

// waitForEvent returns the next registry event and fails the test unless it
// is of the wanted kind.
func waitForEvent(t testing.TB, ctx context.Context, events <-chan backchannel.PeerEvent, want backchannel.PeerEventKind) backchannel.PeerEvent {
	t.Helper()
	select {
	case ev, ok := <-events:
		if !ok {
			t.Fatalf("registry events closed while waiting for %v", want)
		}
		if ev.Kind != want {
			t.Fatalf("registry event = %v of peer %d, want %v", ev.Kind, ev.Peer.ID, want)
		}
		return ev
	case <-ctx.Done():
		t.Fatalf("no %v event: %v", want, ctx.Err())
	}
	return backchannel.PeerEvent{}
}

// TestDisconnectDuringReverseCall closes a client while the server's
// reverse call into it is running: the reverse call fails with Unavailable
// or Canceled and the peer leaves the registry.
func TestDisconnectDuringReverseCall(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		reverseErr := make(chan error, 1)
		srv := startServer(t, tr, func(reg *backchannel.Registry) testgrpc.TestServiceServer {
			return &reverseErrService{registry: reg, result: reverseErr}
		})
		ctx := testContext(t)
		_, events := srv.registry.Watch(ctx)

		entered := make(chan struct{})
		cc := dialMuxed(t, tr, srv.addr, &blockingService{entered: entered})
		forwardErr := make(chan error, 1)
		go func() {
			_, err := testgrpc.NewTestServiceClient(cc).UnaryCall(ctx, payloadRequest("x"))
			forwardErr <- err
		}()

		joined := waitForEvent(t, ctx, events, backchannel.PeerJoined)
		select {
		case <-entered:
		case <-ctx.Done():
			t.Fatal("reverse call never reached the client")
		}
		cc.Close()

		select {
		case err := <-reverseErr:
			if code := status.Code(err); code != codes.Unavailable && code != codes.Canceled {
				t.Errorf("reverse call ended with %v, want Unavailable or Canceled", err)
			}
		case <-ctx.Done():
			t.Fatal("reverse call did not end after the client disconnected")
		}
		left := waitForEvent(t, ctx, events, backchannel.PeerLeft)
		if left.Peer.ID != joined.Peer.ID {
			t.Errorf("peer %d left, want %d", left.Peer.ID, joined.Peer.ID)
		}
		if _, err := srv.registry.Backchannel(joined.Peer.ID); err == nil {
			t.Errorf("Backchannel(%d) succeeded after the peer left", joined.Peer.ID)
		}
		if err := <-forwardErr; status.Code(err) != codes.Canceled {
			t.Errorf("forward call error = %v, want Canceled (the client closed its connection)", err)
		}
	})
}

// reverseErrService makes a reverse call per forward call and reports how
// it ended.
type reverseErrService struct {
	testgrpc.UnimplementedTestServiceServer
	registry *backchannel.Registry
	result   chan<- error
}

func (s *reverseErrService) UnaryCall(ctx context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	conn, err := callerBackchannel(ctx, s.registry)
	if err != nil {
		return nil, err
	}
	// Detached from the forward call, so that only the connection's end
	// can end the reverse call.
	_, err = testgrpc.NewTestServiceClient(conn).UnaryCall(context.WithoutCancel(ctx), req)
	s.result <- err
	return nil, err
}

// blockingService holds every UnaryCall until the call's context ends.
type blockingService struct {
	testgrpc.UnimplementedTestServiceServer
	entered chan struct{}
	once    sync.Once
}

func (s *blockingService) UnaryCall(ctx context.Context, _ *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	s.once.Do(func() { close(s.entered) })
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestStalledReverseCallDoesNotStallForwardCalls keeps a reverse call
// blocked in the client's handler, and a reverse stream whose window is full
// because the client does not read it, while the client makes forward calls
// on the same connection.
func TestStalledReverseCallDoesNotStallForwardCalls(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		srv := startServer(t, tr, newStallingService)
		ctx := testContext(t)

		entered := make(chan struct{})
		cc := dialMuxed(t, tr, srv.addr, &blockingService{entered: entered})
		client := testgrpc.NewTestServiceClient(cc)

		stallCtx, stopStall := context.WithCancel(ctx)
		defer stopStall()
		stalled := make(chan error, 1)
		go func() {
			_, err := client.UnaryCall(stallCtx, payloadRequest("stall"))
			stalled <- err
		}()
		select {
		case <-entered:
		case <-ctx.Done():
			t.Fatal("reverse call never reached the client")
		}

		for i := range 20 {
			if _, err := client.EmptyCall(ctx, &testgrpc.Empty{}); err != nil {
				t.Fatalf("forward call %d while a reverse call stalls: %v", i, err)
			}
		}
		stopStall()
		if err := <-stalled; status.Code(err) != codes.Canceled {
			t.Errorf("stalled call ended with %v, want Canceled", err)
		}
	})
}

// stallingService answers UnaryCall with a reverse call that the client
// blocks, and EmptyCall at once.
type stallingService struct {
	testgrpc.UnimplementedTestServiceServer
	registry *backchannel.Registry
}

func newStallingService(reg *backchannel.Registry) testgrpc.TestServiceServer {
	return &stallingService{registry: reg}
}

func (s *stallingService) EmptyCall(context.Context, *testgrpc.Empty) (*testgrpc.Empty, error) {
	return &testgrpc.Empty{}, nil
}

func (s *stallingService) UnaryCall(ctx context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	conn, err := callerBackchannel(ctx, s.registry)
	if err != nil {
		return nil, err
	}
	return testgrpc.NewTestServiceClient(conn).UnaryCall(ctx, req)
}

// TestUnreadReverseStreamDoesNotStallForwardCalls fills the yamux and
// HTTP/2 windows of a reverse stream that the client never reads; forward
// calls on the same connection go on.
func TestUnreadReverseStreamDoesNotStallForwardCalls(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		srv := startServer(t, tr, newStallingService)
		ctx := testContext(t)

		entered := make(chan struct{})
		cc := dialMuxed(t, tr, srv.addr, &unreadService{entered: entered})
		client := testgrpc.NewTestServiceClient(cc)
		if _, err := client.EmptyCall(ctx, &testgrpc.Empty{}); err != nil {
			t.Fatalf("EmptyCall: %v", err)
		}

		// Push 32 MiB into the client's backchannel, which does not read it.
		reverse, err := srv.registry.Backchannel(1)
		if err != nil {
			t.Fatal(err)
		}
		pushCtx, stopPush := context.WithCancel(ctx)
		defer stopPush()
		stream, err := testgrpc.NewTestServiceClient(reverse).StreamingInputCall(pushCtx)
		if err != nil {
			t.Fatalf("open reverse stream: %v", err)
		}
		pushed := make(chan error, 1)
		go func() {
			chunk := &testgrpc.StreamingInputCallRequest{Payload: &testgrpc.Payload{Body: make([]byte, 1<<20)}}
			for range 32 {
				if err := stream.Send(chunk); err != nil {
					pushed <- err
					return
				}
			}
			pushed <- nil
		}()
		select {
		case <-entered:
		case <-ctx.Done():
			t.Fatal("reverse stream never reached the client")
		}

		for i := range 20 {
			if _, err := client.EmptyCall(ctx, &testgrpc.Empty{}); err != nil {
				t.Fatalf("forward call %d while a reverse stream is full: %v", i, err)
			}
		}
		select {
		case err := <-pushed:
			t.Fatalf("32 MiB went into a stream nobody reads (err %v): the windows do not hold", err)
		default:
		}
		stopPush()
		<-pushed
	})
}

// unreadService accepts a StreamingInputCall and never reads from it.
type unreadService struct {
	testgrpc.UnimplementedTestServiceServer
	entered chan struct{}
}

func (s *unreadService) StreamingInputCall(stream grpc.ClientStreamingServer[testgrpc.StreamingInputCallRequest, testgrpc.StreamingInputCallResponse]) error {
	close(s.entered)
	<-stream.Context().Done()
	return stream.Context().Err()
}

// TestPlainServerRejectsMultiplexedClient shows what a multiplexing client
// sees against a server that does not speak the backchannel protocol: the
// call fails instead of hanging.
func TestPlainServerRejectsMultiplexedClient(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		lis := listen(t)
		srv := grpc.NewServer(grpc.Creds(tr.server(t)))
		testgrpc.RegisterTestServiceServer(srv, &stallingService{})
		go srv.Serve(lis)
		defer srv.Stop()

		cc := dialMuxed(t, tr, lis.Addr().String(), &namedService{})
		_, err := testgrpc.NewTestServiceClient(cc).EmptyCall(testContext(t), &testgrpc.Empty{})
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("EmptyCall against a plain server = %v, want Unavailable", err)
		}
	})
}

// TestGetPeerIDWithoutPeer checks the error for a context without a peer.
func TestGetPeerIDWithoutPeer(t *testing.T) {
	_, err := backchannel.GetPeerID(context.Background())
	if err == nil || errors.Is(err, backchannel.ErrNonMultiplexedConnection) || !strings.Contains(err.Error(), "no peer") {
		t.Fatalf("GetPeerID(no peer) = %v, want an error saying there is no peer", err)
	}
}
