package backchannel_test

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/listenmux"
	"google.golang.org/grpc"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
)

// The benchmarks compare a multiplexed connection with plain grpc-go in the
// same run, over TCP on 127.0.0.1:
//
//	go test -run '^$' -bench . -benchmem -count 6 ./backchannel | tee new.txt
//	benchstat new.txt
//
// "plain" is a grpc-go client and server with no listenmux and no
// handshake. "forward" calls go from the multiplexing client to the server,
// "reverse" calls from the server to the client's backchannel.

// benchService answers the benchmark's calls on either side.
type benchService struct {
	testgrpc.UnimplementedTestServiceServer
	payload []byte
}

func (s *benchService) UnaryCall(_ context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	return &testgrpc.SimpleResponse{Payload: req.GetPayload()}, nil
}

// StreamingInputCall drains an upload.
func (s *benchService) StreamingInputCall(stream grpc.ClientStreamingServer[testgrpc.StreamingInputCallRequest, testgrpc.StreamingInputCallResponse]) error {
	total := 0
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return stream.SendAndClose(&testgrpc.StreamingInputCallResponse{AggregatedPayloadSize: int32(total)})
		}
		if err != nil {
			return err
		}
		total += len(req.GetPayload().GetBody())
	}
}

// StreamingOutputCall sends one message of s.payload per response
// parameter.
func (s *benchService) StreamingOutputCall(req *testgrpc.StreamingOutputCallRequest, stream grpc.ServerStreamingServer[testgrpc.StreamingOutputCallResponse]) error {
	resp := &testgrpc.StreamingOutputCallResponse{Payload: &testgrpc.Payload{Body: s.payload}}
	for range req.GetResponseParameters() {
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
	return nil
}

const streamMessageSize = 1 << 20

// benchPair is a connected client and server; forward is the client's
// connection to the server, reverse the server's connection to the client
// (nil for plain grpc-go).
type benchPair struct {
	forward testgrpc.TestServiceClient
	reverse testgrpc.TestServiceClient
}

func newPlainPair(b *testing.B) benchPair {
	lis := listen(b)
	srv := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(srv, &benchService{payload: make([]byte, streamMessageSize)})
	go srv.Serve(lis)
	b.Cleanup(srv.Stop)
	cc := dial(b, lis.Addr().String(), grpc.WithTransportCredentials(insecureCreds()))
	return benchPair{forward: testgrpc.NewTestServiceClient(cc)}
}

func newMuxedPair(b *testing.B) benchPair {
	lis := listen(b)
	registry := backchannel.NewRegistry()
	mux := listenmux.New(insecureCreds())
	mux.Register(backchannel.NewServerHandshaker(nil, registry, nil))
	srv := grpc.NewServer(grpc.Creds(mux))
	testgrpc.RegisterTestServiceServer(srv, &benchService{payload: make([]byte, streamMessageSize)})
	go srv.Serve(lis)
	b.Cleanup(srv.Stop)

	ctx := testContext(b)
	_, events := registry.Watch(ctx)
	cc := dialMuxedService(b, lis.Addr().String(), &benchService{payload: make([]byte, streamMessageSize)})
	forward := testgrpc.NewTestServiceClient(cc)
	if _, err := forward.UnaryCall(ctx, &testgrpc.SimpleRequest{}); err != nil {
		b.Fatal(err)
	}
	ev := <-events
	reverse, err := registry.Backchannel(ev.Peer.ID)
	if err != nil {
		b.Fatal(err)
	}
	return benchPair{forward: forward, reverse: testgrpc.NewTestServiceClient(reverse)}
}

func dialMuxedService(b *testing.B, addr string, svc testgrpc.TestServiceServer) *grpc.ClientConn {
	handshaker := backchannel.NewClientHandshaker(nil, func() backchannel.Server {
		srv := grpc.NewServer()
		testgrpc.RegisterTestServiceServer(srv, svc)
		return srv
	}, backchannel.DefaultConfiguration())
	return dial(b, addr, grpc.WithTransportCredentials(handshaker.ClientHandshake(insecureCreds())))
}

// concurrencies are the numbers of concurrent callers each benchmark runs.
var concurrencies = []int{1, 64}

// runConcurrently runs op b.N times in total from n goroutines.
func runConcurrently(b *testing.B, n int, op func() error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	b.ResetTimer()
	for range n {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if err := op(); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// BenchmarkUnary measures small unary calls per second.
func BenchmarkUnary(b *testing.B) {
	req := &testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: make([]byte, 64)}}
	cases := []struct {
		name   string
		client func(b *testing.B) testgrpc.TestServiceClient
	}{
		{"plain", func(b *testing.B) testgrpc.TestServiceClient { return newPlainPair(b).forward }},
		{"forward", func(b *testing.B) testgrpc.TestServiceClient { return newMuxedPair(b).forward }},
		{"reverse", func(b *testing.B) testgrpc.TestServiceClient { return newMuxedPair(b).reverse }},
	}
	for _, c := range concurrencies {
		for _, tc := range cases {
			b.Run(fmt.Sprintf("%s/c%d", tc.name, c), func(b *testing.B) {
				client := tc.client(b)
				ctx := testContext(b)
				b.ReportAllocs()
				runConcurrently(b, c, func() error {
					_, err := client.UnaryCall(ctx, req)
					return err
				})
			})
		}
	}
}

// BenchmarkStream1MiB measures the throughput of 1 MiB messages streamed
// one way: "up" from the calling side to the called side, "down" back.
// Over the multiplexed connection, forward calls are the client's and
// reverse calls the server's, so the four cases cover both directions of
// both gRPC sessions.
func BenchmarkStream1MiB(b *testing.B) {
	cases := []struct {
		name   string
		client func(b *testing.B) testgrpc.TestServiceClient
	}{
		{"plain", func(b *testing.B) testgrpc.TestServiceClient { return newPlainPair(b).forward }},
		{"forward", func(b *testing.B) testgrpc.TestServiceClient { return newMuxedPair(b).forward }},
		{"reverse", func(b *testing.B) testgrpc.TestServiceClient { return newMuxedPair(b).reverse }},
	}
	const perStream = 16
	for _, c := range concurrencies {
		for _, tc := range cases {
			b.Run(fmt.Sprintf("%s/up/c%d", tc.name, c), func(b *testing.B) {
				client := tc.client(b)
				ctx := testContext(b)
				msg := &testgrpc.StreamingInputCallRequest{Payload: &testgrpc.Payload{Body: make([]byte, streamMessageSize)}}
				b.SetBytes(streamMessageSize)
				runStreams(b, c, perStream, func(n int) error {
					stream, err := client.StreamingInputCall(ctx)
					if err != nil {
						return err
					}
					for range n {
						if err := stream.Send(msg); err != nil {
							return err
						}
					}
					_, err = stream.CloseAndRecv()
					return err
				})
			})
			b.Run(fmt.Sprintf("%s/down/c%d", tc.name, c), func(b *testing.B) {
				client := tc.client(b)
				ctx := testContext(b)
				b.SetBytes(streamMessageSize)
				runStreams(b, c, perStream, func(n int) error {
					stream, err := client.StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{
						ResponseParameters: make([]*testgrpc.ResponseParameters, n),
					})
					if err != nil {
						return err
					}
					for {
						if _, err := stream.Recv(); err == io.EOF {
							return nil
						} else if err != nil {
							return err
						}
					}
				})
			})
		}
	}
}

// runStreams moves b.N messages in streams of up to perStream messages from
// n concurrent goroutines.
func runStreams(b *testing.B, n, perStream int, stream func(messages int) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	b.ResetTimer()
	for range n {
		wg.Go(func() {
			for {
				end := next.Add(int64(perStream))
				start := end - int64(perStream)
				if start >= int64(b.N) {
					return
				}
				if err := stream(int(min(end, int64(b.N)) - start)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}
