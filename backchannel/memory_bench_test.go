package backchannel_test

import (
	"runtime"
	"testing"

	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

// BenchmarkIdlePeerMemory connects b.N multiplexed clients to one server
// and reports the heap and stack memory each idle peer holds, client and
// server side together, after a garbage collection:
//
//	go test -run '^$' -bench IdlePeerMemory -benchtime 1000x ./backchannel
//
// "connected" peers have made one forward call; "reversed" peers have also
// answered one reverse call, so their backchannel connection exists too.
func BenchmarkIdlePeerMemory(b *testing.B) {
	for _, reverse := range []bool{false, true} {
		name := map[bool]string{false: "connected", true: "reversed"}[reverse]
		b.Run(name, func(b *testing.B) {
			srv := startServer(b, transports[0], newReverseService)
			ctx := testContext(b)
			before := liveBytes()

			b.ResetTimer()
			for i := range b.N {
				client := testgrpc.NewTestServiceClient(dialMuxed(b, transports[0], srv.addr, &namedService{name: "idle"}))
				var err error
				if reverse {
					_, err = client.UnaryCall(ctx, payloadRequest("x"))
				} else if _, err = client.EmptyCall(ctx, &testgrpc.Empty{}); status.Code(err) == codes.Unimplemented {
					err = nil
				}
				if err != nil {
					b.Fatalf("peer %d: %v", i, err)
				}
			}
			b.StopTimer()

			if got := srv.registry.Len(); got != b.N {
				b.Fatalf("registry holds %d peers, want %d", got, b.N)
			}
			b.ReportMetric(float64(liveBytes()-before)/float64(b.N)/1024, "KiB/peer")
			b.ReportMetric(float64(runtime.NumGoroutine())/float64(b.N), "goroutines/peer")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// liveBytes returns the heap in use plus goroutine stacks after a GC.
func liveBytes() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc + m.StackInuse
}
