package serve

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/journal"
	"github.com/bcctl/bcctl/internal/script"
)

// ---- Scripted unary answers beside a compiled grpc-go server ----

// benchReplyScript answers UnaryCall as compiledUnary does: a
// COMPRESSABLE payload of 64 zero bytes.
const benchReplyScript = `
rules:
  - name: unary
    match: {method: grpc.testing.TestService/UnaryCall}
    reply: {payload: {type: COMPRESSABLE, body: !!binary "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="}}
`

// compiledUnary is the compiled grpc-go server the benchmark compares
// serve with.
type compiledUnary struct {
	testgrpc.UnimplementedTestServiceServer
}

func (compiledUnary) UnaryCall(context.Context, *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	return &testpb.SimpleResponse{Payload: &testpb.Payload{Type: testpb.PayloadType_COMPRESSABLE, Body: make([]byte, 64)}}, nil
}

func testServiceSchema(tb testing.TB) *dynamic.FileSource {
	tb.Helper()
	src, err := dynamic.NewSourceFromFiles(testpb.File_grpc_testing_test_proto)
	if err != nil {
		tb.Fatal(err)
	}
	return src
}

// startBenchServe runs a serve of the TestService with benchReplyScript,
// configured as bcctl serve runs by default (the journal kept in memory
// for the admin API, no journal file unless journal is set).
func startBenchServe(tb testing.TB, journal JournalSink) (*Server, string) {
	tb.Helper()
	src := testServiceSchema(tb)
	sc, err := script.Parse(context.Background(), "bench.yaml", []byte(benchReplyScript), script.Config{Upstream: src})
	if err != nil {
		tb.Fatal(err)
	}
	srv, err := New(Config{Schema: src, Script: sc, Journal: journal})
	if err != nil {
		tb.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	go srv.Serve(lis)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return srv, lis.Addr().String()
}

func startCompiled(tb testing.TB) string {
	tb.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(s, compiledUnary{})
	go s.Serve(lis)
	tb.Cleanup(s.Stop)
	return lis.Addr().String()
}

// loadClient is the Go load client: conns plain gRPC connections to one
// server, driven by inFlight goroutines spread over them.
type loadClient struct {
	clients []testgrpc.TestServiceClient
	req     *testpb.SimpleRequest
	// vary makes every request differ (its payload starts with a
	// counter), so that nothing about it repeats.
	vary bool
	seq  atomic.Uint64
}

func newLoadClient(tb testing.TB, addr string, conns int) *loadClient {
	tb.Helper()
	lc := &loadClient{req: &testpb.SimpleRequest{ResponseType: testpb.PayloadType_COMPRESSABLE, ResponseSize: 64, Payload: &testpb.Payload{Body: make([]byte, 64)}}}
	for range conns {
		cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { cc.Close() })
		lc.clients = append(lc.clients, testgrpc.NewTestServiceClient(cc))
	}
	return lc
}

// run makes n calls with inFlight calls at a time and returns how long
// they took.
func (lc *loadClient) run(tb testing.TB, n, inFlight int) time.Duration {
	start := time.Now()
	var wg sync.WaitGroup
	per := n / inFlight
	for g := range inFlight {
		client := lc.clients[g%len(lc.clients)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := lc.req
			if lc.vary {
				req = proto.Clone(lc.req).(*testpb.SimpleRequest)
			}
			for range per {
				if lc.vary {
					binary.BigEndian.PutUint64(req.Payload.Body, lc.seq.Add(1))
				}
				if _, err := client.UnaryCall(context.Background(), req); err != nil {
					tb.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}

// TestBenchServersAgree checks that serve and the compiled server give the
// same answer, so that the benchmark compares equal work.
func TestBenchServersAgree(t *testing.T) {
	var got []*testpb.SimpleResponse
	_, serveAddr := startBenchServe(t, nil)
	for _, addr := range []string{serveAddr, startCompiled(t)} {
		lc := newLoadClient(t, addr, 1)
		resp, err := lc.clients[0].UnaryCall(testContext(t), lc.req)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, resp)
	}
	if !proto.Equal(got[0], got[1]) {
		t.Errorf("serve answers %v, the compiled server %v", got[0], got[1])
	}
}

// BenchmarkScriptedUnary measures scripted unary answers per second from
// serve under load from plain clients, beside a compiled grpc-go server
// answering the same method in the same run: batches of calls alternate
// between the two servers (and which goes first alternates too), so load
// from elsewhere on the machine falls on both alike. It reports each
// server's rate and serve/compiled.
func BenchmarkScriptedUnary(b *testing.B) {
	for _, tc := range []struct {
		name            string
		conns, inFlight int
		journal         bool
		vary            bool
	}{
		{"serial", 1, 1, false, false},
		{"4conns-32inflight", 4, 32, false, false},
		{"4conns-32inflight-journal", 4, 32, true, false},
		{"4conns-32inflight-journal-varied", 4, 32, true, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var sink JournalSink
			if tc.journal {
				jw, err := journal.Create(filepath.Join(b.TempDir(), "journal.jsonl"), journal.Options{Buffered: true})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { jw.Close() })
				sink = JournalWriter(jw) // as bcctl serve --journal FILE
			}
			srv, serveAddr := startBenchServe(b, sink)
			servers := []*loadClient{
				newLoadClient(b, serveAddr, tc.conns),
				newLoadClient(b, startCompiled(b), tc.conns),
			}
			for _, s := range servers {
				s.vary = tc.vary
			}
			// serve's batch ends when its journal has written every entry,
			// so that the work taken off the calls' path is counted too.
			drain := func() {
				if srv.journal != nil {
					srv.journal.sync()
				}
			}
			const batch = 256
			for _, s := range servers { // warm up connections and pools
				s.run(b, batch, tc.inFlight)
			}
			drain()
			var elapsed [2]time.Duration
			var calls [2]int
			b.ResetTimer()
			i := 0
			for b.Loop() {
				order := []int{0, 1}
				if i%2 == 1 {
					order = []int{1, 0}
				}
				for _, k := range order {
					start := time.Now()
					servers[k].run(b, batch, tc.inFlight)
					if k == 0 {
						drain()
					}
					elapsed[k] += time.Since(start)
					calls[k] += batch
				}
				i++
			}
			serveRate := float64(calls[0]) / elapsed[0].Seconds()
			compiledRate := float64(calls[1]) / elapsed[1].Seconds()
			b.ReportMetric(serveRate, "serve-calls/s")
			b.ReportMetric(compiledRate, "compiled-calls/s")
			b.ReportMetric(serveRate/compiledRate, "serve/compiled")
		})
	}
}

// ---- Memory per idle multiplexed peer ----

// memorySample is what the runtime says about the process's memory.
type memorySample struct {
	heap, stacks uint64 // live heap after GC; goroutine stacks
	goroutines   int
}

func sampleMemory() memorySample {
	runtime.GC()
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/heap/stacks:bytes"}}
	metrics.Read(s)
	return memorySample{heap: s[0].Value.Uint64(), stacks: s[1].Value.Uint64(), goroutines: runtime.NumGoroutine()}
}

// BenchmarkIdlePeerMemory connects idle multiplexed peers (5000 by default,
// BCCTL_BENCH_PEERS to change) from child processes, so that the memory
// this process measures is serve's alone, and reports the live heap and
// goroutine stacks per peer (runtime/metrics after two GCs, compared with
// the same server before the peers came):
//
//   - no-discovery: the peers connected and registered, nothing else;
//   - discovered: serve listed each peer's services by reflection over its
//     backchannel, and the dial-back connections are still open;
//   - discovered-idle: the dial-back connections have gone idle
//     (Config.BackchannelIdleTimeout) and were released.
//
// BCCTL_BENCH_HEAPPROFILE=FILE writes a heap profile (FILE.MODE) and the
// goroutines (FILE.MODE.goroutines) with the peers connected.
func BenchmarkIdlePeerMemory(b *testing.B) {
	n := 5000
	if s := os.Getenv("BCCTL_BENCH_PEERS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	for _, mode := range []string{"no-discovery", "discovered", "discovered-idle"} {
		b.Run(mode, func(b *testing.B) {
			for b.Loop() {
				measureIdlePeers(b, n, mode)
			}
		})
	}
}

func measureIdlePeers(b *testing.B, n int, mode string) {
	src := corpusSchema(b)
	sc, err := script.Parse(context.Background(), "serve.yaml", []byte(voteScript), script.Config{Upstream: src})
	if err != nil {
		b.Fatal(err)
	}
	cfg := Config{Schema: src, Script: sc, NoDiscovery: mode == "no-discovery", HandshakeTimeout: time.Minute}
	if mode == "discovered-idle" {
		cfg.BackchannelIdleTimeout = time.Second
	}
	srv, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(lis)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	addr := lis.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// Warm up: one peer comes, is discovered, and goes, so that pools and
	// lazily built state exist before the baseline.
	startFarmsB(b, addr, 1, func() { waitPeers(b, ctx, srv, 1) })
	waitPeers(b, ctx, srv, 0)

	before := sampleMemory()
	stop := startFarmsB(b, addr, n, nil)
	waitPeers(b, ctx, srv, n)
	if mode == "discovered-idle" {
		for _, p := range srv.Peers() {
			conn, err := srv.Registry().Backchannel(p.ID)
			if err != nil {
				b.Fatal(err)
			}
			for s := conn.GetState(); s != connectivity.Idle; s = conn.GetState() {
				if !conn.WaitForStateChange(ctx, s) {
					b.Fatalf("peer %d's dial-back did not go idle", p.ID)
				}
			}
		}
	}
	after := sampleMemory()
	if path := os.Getenv("BCCTL_BENCH_HEAPPROFILE"); path != "" {
		f, err := os.Create(fmt.Sprintf("%s.%s", path, mode))
		if err == nil {
			pprof.WriteHeapProfile(f)
			f.Close()
		}
		if f, err := os.Create(fmt.Sprintf("%s.%s.goroutines", path, mode)); err == nil {
			pprof.Lookup("goroutine").WriteTo(f, 1)
			f.Close()
		}
	}
	heap := float64(after.heap) - float64(before.heap)
	stacks := float64(after.stacks) - float64(before.stacks)
	b.ReportMetric(heap/float64(n), "heap-B/peer")
	b.ReportMetric(stacks/float64(n), "stack-B/peer")
	b.ReportMetric((heap+stacks)/float64(n), "B/peer")
	b.ReportMetric(float64(after.goroutines-before.goroutines)/float64(n), "goroutines/peer")
	stop()
	waitPeers(b, ctx, srv, 0)
}

// startFarmsB is startFarms for benchmarks that need the peers gone before
// the benchmark ends: it returns a function that disconnects them (and
// calls then, when set, while they are connected).
func startFarmsB(b *testing.B, addr string, n int, then func()) func() {
	tb := &farmTB{B: b}
	startFarms(tb, addr, n)
	if then != nil {
		then()
		tb.cleanup()
		return func() {}
	}
	return tb.cleanup
}

// farmTB collects the farms' cleanups instead of deferring them to the end
// of the benchmark.
type farmTB struct {
	*testing.B
	cleanups []func()
}

func (f *farmTB) Cleanup(fn func()) { f.cleanups = append(f.cleanups, fn) }

func (f *farmTB) cleanup() {
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
	f.cleanups = nil
}

// ---- A reverse call fanned out to 1000 peers ----

// BenchmarkFanOut measures one forward call whose rule calls
// StopTransaction on every connected peer (`to: all`, 1000 peers from child
// processes) and answers when all have answered: the time of a reverse call
// fanned out to 1000 peers, as a script makes it.
func BenchmarkFanOut(b *testing.B) {
	const n = 1000
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	srv, addr, _ := startServe(b, voteScript, func(c *Config) { c.JournalBacklog = -1; c.Journal = nil })
	stop := startFarmsB(b, addr, n, nil)
	defer stop()
	waitPeers(b, ctx, srv, n)
	conn := dialPlain(b, addr)
	fanOut := func() {
		if _, st := call(b, ctx, conn, "gitaly.OperationService/UserDeleteBranch", `{}`); st.Code() != 0 {
			b.Fatalf("UserDeleteBranch to all: %v", st)
		}
	}
	fanOut() // every dial-back connected
	b.ResetTimer()
	for b.Loop() {
		fanOut()
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/fan-out")
	b.StopTimer()
	if p := srv.Peers()[0]; p.ReverseCalls < 2 {
		b.Fatalf("peer %d had %d reverse calls", p.ID, p.ReverseCalls)
	}
}

func jsonLine(ev *Event) ([]byte, error) {
	line, err := json.Marshal(ev.Entry())
	return append(line, '\n'), err
}

// ---- The journal's cost per entry ----

// BenchmarkJournalEntry measures what the journal goroutine spends on one
// entry of BenchmarkScriptedUnary's call, as bcctl serve --journal FILE
// writes it: the entry rendered and appended to a buffered journal file,
// which is flushed every 8 entries (a batch). "varied" makes every request
// differ, so that no rendered message is remembered.
func BenchmarkJournalEntry(b *testing.B) {
	for _, vary := range []bool{false, true} {
		b.Run(map[bool]string{false: "repeated", true: "varied"}[vary], func(b *testing.B) {
			captured := make(chan *Event, 1)
			srv, addr := startBenchServe(b, JournalSinkFunc(func(ev *Event) error {
				select {
				case captured <- ev:
				default:
				}
				return nil
			}))
			lc := newLoadClient(b, addr, 1)
			if _, err := lc.clients[0].UnaryCall(testContext(b), lc.req); err != nil {
				b.Fatal(err)
			}
			srv.journal.sync()
			template := <-captured
			req := template.Call.Requests[0]
			payloadField := req.ProtoReflect().Descriptor().Fields().ByName("payload")
			bodyField := payloadField.Message().Fields().ByName("body")

			jw, err := journal.Create(filepath.Join(b.TempDir(), "journal.jsonl"), journal.Options{Buffered: true})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { jw.Close() })
			sink := JournalWriter(jw)
			b.ReportAllocs()
			var seq uint64
			for b.Loop() {
				seq++
				call := *template.Call
				if vary {
					r := proto.Clone(req)
					body := make([]byte, 64)
					binary.BigEndian.PutUint64(body, seq)
					r.ProtoReflect().Mutable(payloadField).Message().Set(bodyField, protoreflect.ValueOfBytes(body))
					call.Requests = []proto.Message{r}
				}
				ev := srv.Hub.event(&call, seq, 0, template.By, nil)
				if err := sink.WriteEvent(ev); err != nil {
					b.Fatal(err)
				}
				if seq%8 == 0 {
					if err := sink.Flush(); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
