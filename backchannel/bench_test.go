package backchannel_test

import (
	"context"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/listenmux"
	"google.golang.org/grpc"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
)

// The benchmarks compare a multiplexed connection with plain grpc-go in the
// same run, over TCP on 127.0.0.1:
//
//	go test -run '^$' -bench . -count 6 ./backchannel | tee new.txt
//	benchstat new.txt
//
// "plain" is a grpc-go client and server with no listenmux and no
// handshake. "forward" calls go from the multiplexing client to the server,
// "reverse" calls from the server to the client's backchannel. Each
// benchmark runs the three lanes in alternating batches, so that load from
// other processes falls on all of them alike, and reports each lane's rate
// and its ratio to plain grpc-go.

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

func newMuxedPair(b *testing.B, clientCfg backchannel.Configuration) benchPair {
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
	cc := dialMuxedService(b, lis.Addr().String(), clientCfg, &benchService{payload: make([]byte, streamMessageSize)})
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

func dialMuxedService(b *testing.B, addr string, cfg backchannel.Configuration, svc testgrpc.TestServiceServer) *grpc.ClientConn {
	handshaker := backchannel.NewClientHandshaker(nil, func() backchannel.Server {
		srv := grpc.NewServer()
		testgrpc.RegisterTestServiceServer(srv, svc)
		return srv
	}, cfg)
	return dial(b, addr, grpc.WithTransportCredentials(handshaker.ClientHandshake(insecureCreds())))
}

// lane is one way of making the benchmark's calls.
type lane struct {
	name   string
	client testgrpc.TestServiceClient
}

// newLanes returns plain grpc-go and the two directions of a multiplexed
// connection whose client uses DefaultConfiguration. With wideClient, it
// adds the two directions of a connection whose client has a 16 MiB stream
// window, as the server has by default.
func newLanes(b *testing.B, wideClient bool) []lane {
	muxed := newMuxedPair(b, backchannel.DefaultConfiguration())
	lanes := []lane{
		{name: "plain", client: newPlainPair(b).forward},
		{name: "forward", client: muxed.forward},
		{name: "reverse", client: muxed.reverse},
	}
	if wideClient {
		cfg := backchannel.DefaultConfiguration()
		cfg.MaximumStreamWindowSizeBytes = 16 << 20
		wide := newMuxedPair(b, cfg)
		lanes = append(lanes, lane{name: "forward16M", client: wide.forward}, lane{name: "reverse16M", client: wide.reverse})
	}
	return lanes
}

// interleave runs b.N rounds. In each round every lane runs op perCaller
// times from each of callers goroutines; the lanes take turns going first.
// It reports each lane's operations per second (times unit) and the ratio
// of every lane's rate to the first lane's.
func interleave(b *testing.B, lanes []lane, callers, perCaller int, unit float64, unitName string, op func(testgrpc.TestServiceClient) error) {
	elapsed := make([]time.Duration, len(lanes))
	b.ResetTimer()
	for round := range b.N {
		for k := range lanes {
			i := (round + k) % len(lanes)
			start := time.Now()
			var wg sync.WaitGroup
			errs := make(chan error, callers)
			for range callers {
				wg.Go(func() {
					for range perCaller {
						if err := op(lanes[i].client); err != nil {
							errs <- fmt.Errorf("%s: %w", lanes[i].name, err)
							return
						}
					}
				})
			}
			wg.Wait()
			elapsed[i] += time.Since(start)
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()

	ops := float64(b.N * callers * perCaller)
	base := ops * unit / elapsed[0].Seconds()
	for i, l := range lanes {
		rate := ops * unit / elapsed[i].Seconds()
		b.ReportMetric(rate, l.name+"-"+unitName)
		if i > 0 {
			b.ReportMetric(rate/base, l.name+"/"+lanes[0].name)
		}
	}
	b.ReportMetric(0, "ns/op") // a round's time mixes the lanes; the rates above are the figures
}

// BenchmarkUnary measures small unary calls (64-byte payload) with 1 and
// 64 concurrent callers.
func BenchmarkUnary(b *testing.B) {
	req := &testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: make([]byte, 64)}}
	for _, callers := range []int{1, 64} {
		b.Run(fmt.Sprintf("c%d", callers), func(b *testing.B) {
			lanes := newLanes(b, false)
			ctx := testContext(b)
			interleave(b, lanes, callers, max(1, 128/callers), 1, "calls/s", func(c testgrpc.TestServiceClient) error {
				_, err := c.UnaryCall(ctx, req)
				return err
			})
		})
	}
}

// BenchmarkStream1MiB measures the throughput of 1 MiB messages streamed
// one way, in streams of four: "up" from the calling side to the called
// side, "down" back. Over the multiplexed connection forward calls are the
// client's and reverse calls the server's, so up and down cover both
// directions of both gRPC sessions: forward/down and reverse/up carry data
// into the client, whose stream window bounds them.
func BenchmarkStream1MiB(b *testing.B) {
	const perStream = 4
	up := func(ctx context.Context) func(testgrpc.TestServiceClient) error {
		msg := &testgrpc.StreamingInputCallRequest{Payload: &testgrpc.Payload{Body: make([]byte, streamMessageSize)}}
		return func(c testgrpc.TestServiceClient) error {
			stream, err := c.StreamingInputCall(ctx)
			if err != nil {
				return err
			}
			for range perStream {
				if err := stream.Send(msg); err != nil {
					return err
				}
			}
			_, err = stream.CloseAndRecv()
			return err
		}
	}
	down := func(ctx context.Context) func(testgrpc.TestServiceClient) error {
		req := &testgrpc.StreamingOutputCallRequest{ResponseParameters: make([]*testgrpc.ResponseParameters, perStream)}
		return func(c testgrpc.TestServiceClient) error {
			stream, err := c.StreamingOutputCall(ctx, req)
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
		}
	}
	for _, callers := range []int{1, 64} {
		for _, dir := range []struct {
			name string
			op   func(context.Context) func(testgrpc.TestServiceClient) error
		}{{"up", up}, {"down", down}} {
			b.Run(fmt.Sprintf("%s/c%d", dir.name, callers), func(b *testing.B) {
				lanes := newLanes(b, true)
				ctx := testContext(b)
				interleave(b, lanes, callers, max(1, 4/callers), perStream*streamMessageSize/1e6, "MB/s", dir.op(ctx))
			})
		}
	}
}
