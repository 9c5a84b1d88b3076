package proxy_test

import (
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/internal/proxy"
)

// countingStreamer sends count messages of size bytes on
// StreamingOutputCall as fast as flow control lets it, counting them.
type countingStreamer struct {
	testgrpc.UnimplementedTestServiceServer
	sent     atomic.Int64
	progress chan struct{} // receives after every message sent
}

func (s *countingStreamer) StreamingOutputCall(req *testgrpc.StreamingOutputCallRequest, stream testgrpc.TestService_StreamingOutputCallServer) error {
	for _, p := range req.GetResponseParameters() {
		if err := stream.Send(&testgrpc.StreamingOutputCallResponse{Payload: &testgrpc.Payload{Body: make([]byte, p.GetSize())}}); err != nil {
			return err
		}
		s.sent.Add(1)
		select {
		case s.progress <- struct{}{}:
		default:
		}
	}
	return nil
}

// TestFlowControl: a client that reads slowly slows the upstream: the
// proxy holds one message at a time, so the upstream can never be further
// ahead of the client than the windows of the two hops allow.
func TestFlowControl(t *testing.T) {
	const (
		window   = 64 << 10
		msgSize  = 16 << 10
		messages = 400
		// The most messages that can be on their way: each hop's stream
		// window and gRPC's write quota on each sender, the message the
		// proxy holds, and slack for the HTTP/2 framing.
		maxAhead = (4*window+64<<10)/msgSize + 8
		// lead is how far ahead the upstream is let get before each check.
		lead = 8
	)
	tr := transports[0]
	ctx := testContext(t)
	up := &countingStreamer{progress: make(chan struct{}, 1)}
	u := startUpstream(t, tr, func(*backchannel.Registry) testgrpc.TestServiceServer { return up })
	env := startProxy(t, tr, u.lis.Addr(), func(c *proxy.Config) {
		c.DialOptions = append(c.DialOptions, grpc.WithStaticStreamWindowSize(window), grpc.WithStaticConnWindowSize(window))
		c.ServerOptions = append(c.ServerOptions, grpc.StaticStreamWindowSize(window), grpc.StaticConnWindowSize(window))
	})
	cc := dialWith(t, env.lis, grpc.WithTransportCredentials(tr.clientCreds(t)),
		grpc.WithStaticStreamWindowSize(window), grpc.WithStaticConnWindowSize(window))

	params := make([]*testgrpc.ResponseParameters, messages)
	for i := range params {
		params[i] = &testgrpc.ResponseParameters{Size: msgSize}
	}
	stream, err := testgrpc.NewTestServiceClient(cc).StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{ResponseParameters: params})
	if err != nil {
		t.Fatal(err)
	}
	for received := int64(0); received < messages; received++ {
		// Let the upstream run ahead as far as it can get without the
		// client reading, then see how far that is.
		for up.sent.Load() < min(received+lead, messages) {
			select {
			case <-up.progress:
			case <-ctx.Done():
				t.Fatalf("the upstream stopped at %d messages sent, %d received", up.sent.Load(), received)
			}
		}
		if ahead := up.sent.Load() - received; ahead > maxAhead {
			t.Fatalf("the upstream is %d messages ahead of the client; flow control allows at most %d", ahead, maxAhead)
		}
		if _, err := stream.Recv(); err != nil {
			t.Fatalf("message %d: %v", received, err)
		}
	}
}
