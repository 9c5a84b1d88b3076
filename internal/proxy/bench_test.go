package proxy_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/internal/proxy"
)

// The benchmarks compare calls through the proxy with the same calls made
// directly, in the same run, over TCP on 127.0.0.1:
//
//	go test -run '^$' -bench . -count 6 ./internal/proxy | tee proxy.txt
//
// One upstream serves both: a multiplexed client connected to it directly,
// and one connected through a proxy. "forward" calls go from a client to
// the upstream, "reverse" calls from the upstream into a client's
// backchannel. The lanes run in alternating batches, so load from other
// processes falls on all of them alike; each benchmark reports every
// lane's rate and the ratio of each proxied lane to its direct lane.

// benchService answers the benchmark's calls on either side: unary calls
// with their own payload, uploads as echoService drains them, and
// downloads with a ready payload, so that the lanes measure the relaying.
type benchService struct {
	*echoService
	payload []byte
}

func (s *benchService) UnaryCall(_ context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	return &testgrpc.SimpleResponse{Payload: req.GetPayload()}, nil
}

// StreamingOutputCall sends one message of s.payload per response
// parameter.
func (s *benchService) StreamingOutputCall(req *testgrpc.StreamingOutputCallRequest, stream testgrpc.TestService_StreamingOutputCallServer) error {
	resp := &testgrpc.StreamingOutputCallResponse{Payload: &testgrpc.Payload{Body: s.payload}}
	for range req.GetResponseParameters() {
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
	return nil
}

const streamMessageSize = 1 << 20

// benchLane is one way of making the benchmark's calls.
type benchLane struct {
	name   string
	client testgrpc.TestServiceClient
}

// benchLanes returns, in this order, the forward and reverse lanes of a
// direct multiplexed client and of one connected through a proxy, all
// against one upstream.
func benchLanes(b *testing.B, edit ...func(*proxy.Config)) []benchLane {
	tr := transports[0]
	svc := &benchService{echoService: newEchoService(), payload: make([]byte, streamMessageSize)}
	u := startUpstream(b, tr, func(*backchannel.Registry) testgrpc.TestServiceServer { return svc })
	env := startProxy(b, tr, u.lis.Addr(), append([]func(*proxy.Config){func(c *proxy.Config) {
		c.Observer, c.KeepMessages = nil, 0
	}}, edit...)...)
	ctx := testContext(b)
	_, joined := u.registry.Watch(ctx)

	var lanes []benchLane
	for _, via := range []string{"direct", "proxied"} {
		lis := u.lis
		if via == "proxied" {
			lis = env.lis
		}
		forward := testgrpc.NewTestServiceClient(dialMux(b, tr, lis, svc))
		if _, err := forward.UnaryCall(ctx, &testgrpc.SimpleRequest{}); err != nil {
			b.Fatal(err)
		}
		ev := <-joined
		cc, err := u.registry.Backchannel(ev.Peer.ID)
		if err != nil {
			b.Fatal(err)
		}
		lanes = append(lanes,
			benchLane{name: via + "-forward", client: forward},
			benchLane{name: via + "-reverse", client: testgrpc.NewTestServiceClient(cc)})
	}
	return lanes
}

// interleave runs b.N rounds; in each, every lane runs op perCaller times
// from each of callers goroutines, the lanes taking turns to go first. It
// reports each lane's rate (operations per second times unit) and, for
// lanes[2+i], the ratio of its rate to lanes[i]'s.
func interleave(b *testing.B, lanes []benchLane, callers, perCaller int, unit float64, unitName string, op func(testgrpc.TestServiceClient) error) {
	elapsed := make([]time.Duration, len(lanes))
	cpu := make([]time.Duration, len(lanes))
	b.ResetTimer()
	for round := range b.N {
		for k := range lanes {
			i := (round + k) % len(lanes)
			start, startCPU := time.Now(), cpuTime()
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
			cpu[i] += cpuTime() - startCPU
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()

	ops := float64(b.N * callers * perCaller)
	rates := make([]float64, len(lanes))
	for i, l := range lanes {
		rates[i] = ops * unit / elapsed[i].Seconds()
		b.ReportMetric(rates[i], l.name+"-"+unitName)
	}
	for i := 2; i < len(lanes); i++ {
		b.ReportMetric(rates[i]/rates[i-2], lanes[i].name+"/direct")
		// The CPU time of the whole process per operation: on a busy
		// machine the steadier figure, and what the rates come to when
		// the CPUs are the limit.
		b.ReportMetric(float64(cpu[i].Microseconds())/ops, lanes[i].name+"-cpu-µs/op")
		b.ReportMetric(float64(cpu[i-2].Microseconds())/ops, lanes[i-2].name+"-cpu-µs/op")
	}
	b.ReportMetric(0, "ns/op") // a round's time mixes the lanes; the rates are the figures
}

// BenchmarkUnary measures small unary calls (64-byte payload) with 1 and
// 64 concurrent callers.
func BenchmarkUnary(b *testing.B) {
	req := &testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: make([]byte, 64)}}
	for _, callers := range []int{1, 64} {
		b.Run(fmt.Sprintf("c%d", callers), func(b *testing.B) {
			lanes := benchLanes(b)
			ctx := testContext(b)
			interleave(b, lanes, callers, max(1, 128/callers), 1, "calls/s", func(c testgrpc.TestServiceClient) error {
				_, err := c.UnaryCall(ctx, req)
				return err
			})
		})
	}
}

// BenchmarkStream1MiB measures the throughput of 1 MiB messages streamed
// one way, in streams of four: "up" from the caller to the callee, "down"
// back.
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
	for _, dir := range []struct {
		name string
		op   func(context.Context) func(testgrpc.TestServiceClient) error
	}{{"up", up}, {"down", down}} {
		b.Run(dir.name, func(b *testing.B) {
			lanes := benchLanes(b)
			ctx := testContext(b)
			interleave(b, lanes, 1, 1, perStream*streamMessageSize/1e6, "MB/s", dir.op(ctx))
		})
	}
}

// BenchmarkIdleConnMemory connects b.N multiplexed clients to an upstream,
// first directly and then through a proxy, each making one call, and
// reports the live heap and goroutine stacks each idle connection holds
// (client, proxy and upstream together, in one process) and the
// difference, which is what the proxy adds:
//
//	go test -run '^$' -bench IdleConnMemory -benchtime 1000x ./internal/proxy
func BenchmarkIdleConnMemory(b *testing.B) {
	tr := transports[0]
	svc := &benchService{echoService: newEchoService()}
	u := startUpstream(b, tr, func(*backchannel.Registry) testgrpc.TestServiceServer { return svc })
	env := startProxy(b, tr, u.lis.Addr(), func(c *proxy.Config) { c.Observer, c.KeepMessages = nil, 0 })
	ctx := testContext(b)

	b.ResetTimer()
	direct, dg := perConnMemory(b, ctx, tr, u, u.lis, svc)
	proxied, pg := perConnMemory(b, ctx, tr, u, env.lis, svc)
	b.StopTimer()
	b.ReportMetric(direct, "direct-KiB/conn")
	b.ReportMetric(proxied, "proxied-KiB/conn")
	b.ReportMetric(proxied-direct, "proxy-KiB/conn")
	b.ReportMetric(pg-dg, "proxy-goroutines/conn")
	b.ReportMetric(0, "ns/op")
}

// perConnMemory connects b.N multiplexed clients to lis, each making one
// call, and returns the live memory (KiB) and goroutines each holds; then
// it closes them and waits until the upstream has seen them all leave.
func perConnMemory(b *testing.B, ctx context.Context, tr transport, u *upstream, lis net.Listener, svc testgrpc.TestServiceServer) (kib, goroutines float64) {
	before, gBefore := liveBytes(), runtime.NumGoroutine()
	ccs := make([]*grpc.ClientConn, b.N)
	for i := range b.N {
		ccs[i] = dialMux(b, tr, lis, svc)
		if _, err := testgrpc.NewTestServiceClient(ccs[i]).UnaryCall(ctx, &testgrpc.SimpleRequest{}); err != nil {
			b.Fatalf("connection %d: %v", i, err)
		}
	}
	kib = float64(liveBytes()-before) / float64(b.N) / 1024
	goroutines = float64(runtime.NumGoroutine()-gBefore) / float64(b.N)

	_, events := u.registry.Watch(ctx)
	for _, cc := range ccs {
		cc.Close()
	}
	for u.registry.Len() > 0 {
		select {
		case <-events:
		case <-ctx.Done():
			b.Fatalf("%d connections still open at the upstream", u.registry.Len())
		}
	}
	return kib, goroutines
}

// liveBytes returns the heap in use plus goroutine stacks after a GC.
func liveBytes() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc + m.StackInuse
}

// cpuTime returns the CPU time the process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
