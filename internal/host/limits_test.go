package host

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/listenmux"
)

// upstream is a multiplexing server that plays a hostile Gitaly: every
// forward call hands the test the caller's yamux session, with which the
// test opens what streams it likes.
type upstream struct {
	addr     string
	reg      *backchannel.Registry
	sessions chan *yamux.Session
}

func startUpstream(t *testing.T) *upstream {
	t.Helper()
	u := &upstream{reg: backchannel.NewRegistry(), sessions: make(chan *yamux.Session, 1)}
	mux := listenmux.New(insecure.NewCredentials())
	// A hostile upstream opens streams without waiting for the client to
	// acknowledge them; yamux waits once AcceptBacklog are unacknowledged.
	// Nor does it time the client's acknowledgements: yamux would run a
	// goroutine per stream until the client acknowledged or reset it, and
	// the tests count the goroutines of this process.
	mux.Register(backchannel.NewServerHandshaker(nil, u.reg, nil,
		backchannel.WithServerConfiguration(backchannel.Configuration{AcceptBacklog: 1 << 20, StreamOpenTimeout: -1})))
	srv := grpc.NewServer(grpc.Creds(mux))
	err := dynamic.RegisterServices(srv, []protoreflect.ServiceDescriptor{service(t, "gitaly.RefService")}, dynamic.ResponderFunc(func(call dynamic.Call) error {
		if _, err := call.Recv(); err != nil {
			return err
		}
		if s, err := backchannel.GetYamuxSession(call.Context()); err == nil {
			select {
			case u.sessions <- s:
			default:
			}
		}
		return call.Send(dynamicpb.NewMessage(call.Method().Output()))
	}), dynamic.WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u.addr = lis.Addr().String()
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(lis)
	}()
	t.Cleanup(func() { srv.Stop(); <-done })
	return u
}

// forward makes a forward call; its answer has crossed the session after
// every frame the upstream wrote before it.
func (u *upstream) forward(t *testing.T, c *Conn) {
	t.Helper()
	md := method(t, "gitaly.RefService/FindDefaultBranchName")
	if err := c.ClientConn().Invoke(ctxT(t), dynamic.FullMethod(md), dynamicpb.NewMessage(md.Input()), dynamicpb.NewMessage(md.Output())); err != nil {
		t.Fatalf("forward call: %v", err)
	}
}

// session returns the yamux session of the client's connection.
func (u *upstream) session(t *testing.T, c *Conn) *yamux.Session {
	t.Helper()
	u.forward(t, c)
	return <-u.sessions
}

// dialBack returns a gRPC connection to the client's backchannel over a
// new stream of session, as a Gitaly server dials back.
func dialBack(t *testing.T, session *yamux.Session) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///backchannel", grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(context.Context, string) (net.Conn, error) { return session.Open() }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// heldVotes answers VoteTransaction once release is closed, and
// records how many votes it held at once.
type heldVotes struct {
	release  chan struct{}
	arrived  chan struct{}
	inFlight atomic.Int64
	peak     atomic.Int64
}

func newHeldVotes(open bool) *heldVotes {
	r := &heldVotes{release: make(chan struct{}), arrived: make(chan struct{}, 1024)}
	if open {
		close(r.release)
	}
	return r
}

func (r *heldVotes) Respond(call dynamic.Call) error {
	if _, err := call.Recv(); err != nil {
		return err
	}
	n := r.inFlight.Add(1)
	defer r.inFlight.Add(-1)
	for peak := r.peak.Load(); n > peak && !r.peak.CompareAndSwap(peak, n); peak = r.peak.Load() {
	}
	r.arrived <- struct{}{}
	select {
	case <-r.release:
	case <-call.Context().Done():
		return call.Context().Err()
	}
	return call.Send(dynamicpb.NewMessage(call.Method().Output()))
}

// dialLimited connects a client with limits and a responder for votes;
// its warnings go to logs.
func dialLimited(t *testing.T, addr string, limits Limits, maxRecv int, r dynamic.Responder, logs *warnings, obs ...calls.Observer) *Conn {
	t.Helper()
	c, err := Dial(ctxT(t), Config{
		Address: addr, Creds: insecure.NewCredentials(), ConnectTimeout: time.Minute,
		Limits: limits, MaxRecvMsgSize: maxRecv, Logger: slog.New(logs),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	b := Backchannel{Services: []protoreflect.ServiceDescriptor{service(t, "gitaly.RefTransaction")}, Responder: r}
	if len(obs) > 0 {
		b.Observer = obs[0]
	}
	if err := c.Host(b); err != nil {
		t.Fatal(err)
	}
	return c
}

// vote makes a reverse call with a reference hash of size bytes.
func vote(ctx context.Context, t *testing.T, cc *grpc.ClientConn, size int) error {
	return voteWith(ctx, cc, voteRequest(t, size))
}

// voteRequest is a VoteTransaction request with a reference hash of size
// bytes.
func voteRequest(t *testing.T, size int) *dynamicpb.Message {
	md := method(t, "gitaly.RefTransaction/VoteTransaction")
	req := dynamicpb.NewMessage(md.Input())
	req.Set(md.Input().Fields().ByName("reference_updates_hash"), protoreflect.ValueOfBytes(make([]byte, size)))
	return req
}

func voteWith(ctx context.Context, cc *grpc.ClientConn, req *dynamicpb.Message) error {
	out := dynamicpb.NewMessage(req.Descriptor().ParentFile().Messages().ByName("VoteTransactionResponse"))
	return cc.Invoke(ctx, "/gitaly.RefTransaction/VoteTransaction", req, out)
}

// TestReverseStreamsWithoutPrefaceAreBounded plays an upstream that opens
// 5,000 streams to the client and sends nothing on them: the client holds
// a bounded number of them (the reverse connection limit plus one, and
// the accept backlog), closes each after the handshake timeout with one
// warning, and keeps serving; when the upstream closes them, goroutines
// and heap return to where they were.
func TestReverseStreamsWithoutPrefaceAreBounded(t *testing.T) {
	const streams = 5000
	// Goroutines the client may spend on the streams: gRPC's handshake
	// of each admitted stream, and the one waiting for a slot. (The
	// streams in yamux's backlog cost none.)
	const goroutineBound = 4 * (DefaultMaxReverseConns + 1)
	// The streams in yamux's backlog and the upstream's 5,000 (in this
	// process too) cost a few hundred bytes each.
	const heapBound = 16 << 20

	u := startUpstream(t)
	logs := &warnings{}
	c := dialLimited(t, u.addr, Limits{HandshakeTimeout: 200 * time.Millisecond}, 0, newHeldVotes(true), logs)
	session := u.session(t, c)
	base := takeBaseline()

	opened := make([]net.Conn, 0, streams)
	for range streams {
		s, err := session.Open()
		if err != nil {
			t.Fatalf("open stream %d: %v", len(opened), err)
		}
		opened = append(opened, s)
	}
	u.forward(t, c) // the client has seen every stream open
	goroutines, heap := sampleNow()
	t.Logf("%d silent streams: %+d goroutines, %+d KiB heap", streams, goroutines-base.goroutines, (int64(heap)-int64(base.heap))>>10)
	if d := goroutines - base.goroutines; d > goroutineBound {
		t.Errorf("%d silent streams cost %d goroutines, bound %d", streams, d, goroutineBound)
	}
	if d := int64(heap) - int64(base.heap); d > heapBound {
		t.Errorf("%d silent streams cost %d KiB of heap, bound %d KiB", streams, d>>10, heapBound>>10)
	}
	logs.wait(t, "sent no HTTP/2 preface in time")

	// Once the upstream closes them, the client closes each stream it
	// held, and the one it accepts next finds room in the backlog: a real
	// reverse call gets through. The client drains its backlog as fast as
	// it can, yet after the upstream's close: a stream opened before the
	// client has closed every silent one may find the backlog still full,
	// and be reset. So the upstream waits until the client has closed (or
	// long since reset) every stream before it dials back.
	for _, s := range opened {
		s.Close()
	}
	waitClosedByPeer(t, opened)
	cc := dialBack(t, session)
	if err := vote(ctxT(t), t, cc, 16); err != nil {
		t.Fatalf("reverse call after the silent streams: %v", err)
	}
	cc.Close()
	if n := logs.count("sent no HTTP/2 preface in time"); n != 1 {
		t.Errorf("the handshake timeout was reported %d times, want once", n)
	}
	if err := goleak.Find(base.leaks); err != nil {
		t.Errorf("goroutines left after the silent streams closed: %v", err)
	}
}

// waitClosedByPeer returns once the peer has closed or reset each of
// streams: reading one ends with io.EOF or a reset.
func waitClosedByPeer(t *testing.T, streams []net.Conn) {
	t.Helper()
	deadline, _ := ctxT(t).Deadline()
	for i, s := range streams {
		if err := s.SetReadDeadline(deadline); err != nil {
			t.Fatal(err)
		}
		// The client may have written its HTTP/2 settings before it
		// gave up on the stream.
		if _, err := io.Copy(io.Discard, s); err != nil && !errors.Is(err, yamux.ErrConnectionReset) {
			t.Fatalf("stream %d: %v, want the client to close or reset it", i, err)
		}
	}
}

// TestRoutedSilentStreamIsClosed plays an upstream that opens a stream
// and sends nothing on it, to a client that routes streams by their first
// bytes (Config.StreamHandshakers, as bcctl call's sidechannels do): the
// client closes it after the handshake timeout, with the warning of a
// reverse connection that sent no preface.
func TestRoutedSilentStreamIsClosed(t *testing.T) {
	u := startUpstream(t)
	logs := &warnings{}
	c, err := Dial(ctxT(t), Config{
		Address: u.addr, Creds: insecure.NewCredentials(), ConnectTimeout: time.Minute,
		Limits: Limits{HandshakeTimeout: 100 * time.Millisecond}, Logger: slog.New(logs),
		StreamHandshakers: []listenmux.Handshaker{dispatcher{}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Host(Backchannel{Services: []protoreflect.ServiceDescriptor{service(t, "gitaly.RefTransaction")}, Responder: newHeldVotes(true)}); err != nil {
		t.Fatal(err)
	}
	s, err := u.session(t, c).Open()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	waitClosedByPeer(t, []net.Conn{s})
	logs.wait(t, "sent no HTTP/2 preface in time")
}

// dispatcher is a stream handshaker that takes the streams that begin
// with its magic and closes them.
type dispatcher struct{}

func (dispatcher) Magic() string { return "sidechannel" }

func (dispatcher) Handshake(conn net.Conn, _ credentials.AuthInfo) (net.Conn, credentials.AuthInfo, error) {
	conn.Close()
	return nil, nil, credentials.ErrConnDispatched
}

// TestReverseCallsAreBoundedPerConnection plays an upstream that makes 60
// reverse calls of nearly 4 MiB each at once, which the client holds
// unanswered: at most MaxReverseCalls are in the client at once (the
// upstream queues the rest), heap stays within their size, one warning is
// printed, and every call is answered once released.
func TestReverseCallsAreBoundedPerConnection(t *testing.T) {
	const calls = 60
	const size = 4<<20 - 1024
	u := startUpstream(t)
	logs := &warnings{}
	r := newHeldVotes(false)
	c := dialLimited(t, u.addr, Limits{}, 0, r, logs)
	cc := dialBack(t, u.session(t, c))
	if _, err := healthpb.NewHealthClient(cc).Check(ctxT(t), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("dial-back: %v", err)
	}
	req := voteRequest(t, size) // one request for every call: the test's own memory
	base := takeBaseline()

	// Under the race detector, 240 MB through dynamic messages take time.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	errs := make(chan error, calls)
	for range calls {
		go func() { errs <- voteWith(ctx, cc, req) }()
	}
	for range DefaultMaxReverseCalls {
		<-r.arrived
	}
	logs.wait(t, "as many reverse calls in flight")
	// Both ends are in this process: the upstream's encoded requests in
	// flight and the client's received ones.
	heapBound := int64(2*DefaultMaxReverseCalls*size + 16<<20)
	_, heap := sampleNow()
	t.Logf("%d reverse calls of %d KiB held: %d in the client, %+d MiB heap", calls, size>>10, r.inFlight.Load(), (int64(heap)-int64(base.heap))>>20)
	if d := int64(heap) - int64(base.heap); d > heapBound {
		t.Errorf("heap grew by %d MiB, bound %d MiB", d>>20, heapBound>>20)
	}
	close(r.release)
	for range calls {
		if err := <-errs; err != nil {
			t.Fatalf("reverse call: %v", err)
		}
	}
	if peak := r.peak.Load(); peak != DefaultMaxReverseCalls {
		t.Errorf("the client held %d reverse calls at once, want the limit, %d", peak, DefaultMaxReverseCalls)
	}
	if n := logs.count("as many reverse calls in flight"); n != 1 {
		t.Errorf("the call limit was reported %d times, want once", n)
	}
}

// TestReverseConnectionsAreBounded opens one reverse connection more than
// the limit: it waits, with one warning, until another closes.
func TestReverseConnectionsAreBounded(t *testing.T) {
	u := startUpstream(t)
	logs := &warnings{}
	c := dialLimited(t, u.addr, Limits{}, 0, newHeldVotes(true), logs)
	session := u.session(t, c)
	ctx := ctxT(t)

	var open []*grpc.ClientConn
	for range DefaultMaxReverseConns {
		cc := dialBack(t, session)
		if err := vote(ctx, t, cc, 16); err != nil {
			t.Fatal(err)
		}
		open = append(open, cc)
	}
	extra := make(chan error, 1)
	go func() { extra <- vote(ctx, t, dialBack(t, session), 16) }()
	logs.wait(t, "more reverse connections at once than the backchannel allows; the others wait, and beyond the backlog are reset")
	select {
	case err := <-extra:
		t.Fatalf("the reverse connection beyond the limit was served (%v) while %d were open", err, len(open))
	default:
	}
	open[0].Close()
	if err := <-extra; err != nil {
		t.Fatalf("the waiting reverse connection, once another closed: %v", err)
	}
}

// TestOversizedReverseRequestIsRefused sends a reverse request over the
// receive limit: it fails with RESOURCE_EXHAUSTED and one warning; the
// next call works.
func TestOversizedReverseRequestIsRefused(t *testing.T) {
	u := startUpstream(t)
	logs := &warnings{}
	// The refused calls are reported after their status went out (by
	// grpc-go's stats handler), so the test waits for each report.
	seen := make(chan *calls.Event, 8)
	c := dialLimited(t, u.addr, Limits{}, 1<<10, newHeldVotes(true), logs, calls.ObserverFunc(func(ev *calls.Event) {
		seen <- ev
	}))
	cc := dialBack(t, u.session(t, c))
	ctx := ctxT(t)
	for i := range 2 {
		if err := vote(ctx, t, cc, 4<<10); status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("oversized reverse call: %v, want RESOURCE_EXHAUSTED", err)
		}
		// The refused call is reported as a reverse call, as connect
		// prints it.
		select {
		case ev := <-seen:
			if ev.Method != "gitaly.RefTransaction/VoteTransaction" || ev.Dir != calls.Reverse || ev.Status.Code() != codes.ResourceExhausted {
				t.Errorf("refused call %d observed as %s %s %v, want the reverse VoteTransaction with RESOURCE_EXHAUSTED", i+1, ev.Dir, ev.Method, ev.Status.Code())
			}
		case <-ctx.Done():
			t.Fatalf("refused call %d was never observed", i+1)
		}
	}
	if err := vote(ctx, t, cc, 16); err != nil {
		t.Fatalf("reverse call after the refused one: %v", err)
	}
	if n := logs.count("larger than the backchannel accepts"); n != 1 {
		t.Errorf("the size limit was reported %d times, want once; log:\n%s", n, logs)
	}
}

// baseline is what the process used before a test's hostile upstream
// started.
type baseline struct {
	goroutines int
	heap       uint64
	leaks      goleak.Option
}

func takeBaseline() baseline {
	g, h := sampleNow()
	return baseline{goroutines: g, heap: h, leaks: goleak.IgnoreCurrent()}
}

// sampleNow returns the goroutines and the live heap after a collection.
func sampleNow() (int, uint64) {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return runtime.NumGoroutine(), m.HeapAlloc
}

// warnings is a slog.Handler that keeps the warnings and lets a test wait
// for one.
type warnings struct {
	mu      sync.Mutex
	lines   []string
	changed chan struct{}
}

func (w *warnings) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (w *warnings) WithAttrs([]slog.Attr) slog.Handler           { return w }
func (w *warnings) WithGroup(string) slog.Handler                { return w }

func (w *warnings) Handle(_ context.Context, r slog.Record) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lines = append(w.lines, r.Message)
	if w.changed != nil {
		close(w.changed)
		w.changed = nil
	}
	return nil
}

func (w *warnings) count(substr string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, l := range w.lines {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n
}

// wait returns once a warning containing substr has been logged.
func (w *warnings) wait(t *testing.T, substr string) {
	t.Helper()
	ctx := ctxT(t)
	for {
		w.mu.Lock()
		for _, l := range w.lines {
			if strings.Contains(l, substr) {
				w.mu.Unlock()
				return
			}
		}
		if w.changed == nil {
			w.changed = make(chan struct{})
		}
		changed := w.changed
		w.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("no warning %q; got:\n%s", substr, w)
		}
	}
}

func (w *warnings) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.lines, "\n")
}
