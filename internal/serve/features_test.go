package serve

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/script"
)

// TestPlainGRPCClientListsDescribesAndCalls drives a running serve with
// nothing but grpc-go's generated reflection and health clients and
// dynamic messages built from what reflection returned.
func TestPlainGRPCClientListsDescribesAndCalls(t *testing.T) {
	ctx := testContext(t)
	_, addr, _ := startServe(t, voteScript)
	conn := dialPlain(t, addr)

	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.CloseSend()
	ask := func(req *reflectionpb.ServerReflectionRequest) *reflectionpb.ServerReflectionResponse {
		t.Helper()
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}

	// list
	resp := ask(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}})
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	for _, want := range []string{"gitaly.OperationService", "gitaly.RefService", "gitaly.RefTransaction", "acme.Users", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"} {
		if !slices.Contains(names, want) {
			t.Errorf("list: %v lacks %s", names, want)
		}
	}

	// describe
	resp = ask(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: "gitaly.OperationService"}})
	files := &protoregistry.Files{}
	var pending []*descriptorpb.FileDescriptorProto
	for _, raw := range resp.GetFileDescriptorResponse().GetFileDescriptorProto() {
		fdp := &descriptorpb.FileDescriptorProto{}
		if err := proto.Unmarshal(raw, fdp); err != nil {
			t.Fatal(err)
		}
		pending = append(pending, fdp)
	}
	for len(pending) > 0 { // register each file after its imports
		progress := false
		for i := 0; i < len(pending); i++ {
			fd, err := protodesc.NewFile(pending[i], files)
			if err != nil {
				continue
			}
			if err := files.RegisterFile(fd); err != nil {
				t.Fatal(err)
			}
			pending = slices.Delete(pending, i, i+1)
			i--
			progress = true
		}
		if !progress {
			t.Fatalf("reflection returned files whose imports are missing: %d left", len(pending))
		}
	}
	d, err := files.FindDescriptorByName("gitaly.OperationService.UserCreateBranch")
	if err != nil {
		t.Fatalf("describe: %v", err)
	}
	method := d.(protoreflect.MethodDescriptor)
	if got := method.Input().FullName(); got != "gitaly.UserCreateBranchRequest" {
		t.Errorf("UserCreateBranch input: %s", got)
	}

	// call
	req := dynamicpb.NewMessage(method.Input())
	req.Set(method.Input().Fields().ByName("branch_name"), protoreflect.ValueOfBytes([]byte("main")))
	out := dynamicpb.NewMessage(method.Output())
	if err := conn.Invoke(ctx, "/gitaly.OperationService/UserCreateBranch", req, out); err != nil {
		t.Fatalf("call: %v", err)
	}
	if got := compact(t, out); got != `{"branch":{"name":"main","target_commit":{"id":"unvoted"}}}` {
		t.Errorf("call: got %s", got)
	}

	// health
	h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "gitaly.RefService"})
	if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health: %v %v", h, err)
	}
}

func TestMaxCallsRequestsAStop(t *testing.T) {
	ctx := testContext(t)
	srv, addr, _ := startServe(t, voteScript, func(c *Config) { c.MaxCalls = 2 })
	conn := dialPlain(t, addr)
	call(t, ctx, conn, "gitaly.OperationService/UserCreateBranch", `{}`)
	select {
	case <-srv.StopRequested():
		t.Fatal("stop requested after 1 call")
	default:
	}
	call(t, ctx, conn, "gitaly.OperationService/UserCreateBranch", `{}`)
	select {
	case <-srv.StopRequested():
	case <-ctx.Done():
		t.Fatal("no stop requested after 2 calls")
	}
	if got := srv.StopReason(); got != "answered 2 forward calls (the limit)" {
		t.Errorf("reason: %q", got)
	}
}

// arrivals is a unary interceptor that announces each call as it reaches
// its handler.
func arrivals(ch chan<- string) grpc.ServerOption {
	return grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		ch <- info.FullMethod
		return h(ctx, req)
	})
}

// serveCreateBranchWithDelay serves, on 127.0.0.1, a script that answers
// UserCreateBranch after delay, journaling to j and reporting each call's
// arrival on arrived. Serve's result arrives on the returned channel.
func serveCreateBranchWithDelay(t *testing.T, delay string, j *memJournal, arrived chan string) (*Server, string, <-chan error) {
	t.Helper()
	srv, err := New(Config{Schema: corpusSchema(t), Script: parseScript(t, "delay.yaml", `
rules:
  - match: {method: gitaly.OperationService/UserCreateBranch}
    delay: `+delay+`
    reply: {}
`), Journal: j, ServerOptions: []grpc.ServerOption{arrivals(arrived)}})
	if err != nil {
		t.Fatal(err)
	}
	addr, served := serveLoopback(t, srv)
	return srv, addr, served
}

func TestShutdownKeepsEveryEntry(t *testing.T) {
	ctx := testContext(t)
	const n = 20
	arrived := make(chan string, n)
	j := &memJournal{}
	srv, addr, served := serveCreateBranchWithDelay(t, "100ms", j, arrived)
	conn := dialPlain(t, addr)
	results := make(chan codes.Code, n)
	for range n {
		go func() {
			_, st := call(t, ctx, conn, "gitaly.OperationService/UserCreateBranch", `{}`)
			results <- st.Code()
		}()
	}
	for range n {
		<-arrived
	}
	// Shut down while every call is in flight: the graceful part lets them
	// finish, and each is journaled.
	sub := srv.Subscribe(ctx, SubscribeOptions{Follow: true})
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	ok := 0
	for range n {
		if <-results == codes.OK {
			ok++
		}
	}
	if got := len(j.all()); got != n || ok != n {
		t.Errorf("after shutdown: %d journal entries and %d OK calls, want %d of each", got, ok, n)
	}
	// The subscription ends once it has delivered what it had.
	delivered := 0
	for range sub.C {
		delivered++
	}
	if sub.Err() != nil || delivered != n {
		t.Errorf("subscription: %d events, %v; want %d and no error", delivered, sub.Err(), n)
	}
}

func TestShutdownCutsShortAtTheDeadline(t *testing.T) {
	ctx := testContext(t)
	arrived := make(chan string, 1)
	j := &memJournal{}
	srv, addr, served := serveCreateBranchWithDelay(t, "1h", j, arrived)
	conn := dialPlain(t, addr)
	done := make(chan codes.Code)
	go func() {
		_, st := call(t, ctx, conn, "gitaly.OperationService/UserCreateBranch", `{}`)
		done <- st.Code()
	}()
	<-arrived
	sctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(sctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown with a call that never ends: %v, want the deadline", err)
	}
	<-served
	if c := <-done; c == codes.OK {
		t.Errorf("a call cut short by shutdown succeeded")
	}
	// The client got UNAVAILABLE (its connection was closed), and that is
	// what the journal and the counters say.
	if got := j.all(); len(got) != 1 || got[0].Call.Status.Code() != codes.Unavailable {
		t.Errorf("journal after a cut-short call: %d entries, want 1 UNAVAILABLE", len(got))
	}
	if st := srv.Stats(); st.ForwardCalls != 0 || st.CutCalls != 1 {
		t.Errorf("stats after a cut-short call: %d answered, %d cut; want 0 and 1", st.ForwardCalls, st.CutCalls)
	}
}

// TestCutReverseCallsDoNotMeetExpectations stops serve while a reverse
// call is waiting in a peer that never answers: once the grace period has
// run out, the reverse call is cut, the forward call that made it is
// journaled as the UNAVAILABLE its client got, and neither counts for the
// expectations.
func TestCutReverseCallsDoNotMeetExpectations(t *testing.T) {
	ctx := testContext(t)
	j := &memJournal{}
	srv, err := New(Config{Schema: corpusSchema(t), Journal: j, Script: parseScript(t, "serve.yaml", `
rules:
  - match: {method: gitaly.OperationService/UserCreateBranch}
    do:
      - call: {method: gitaly.RefTransaction/VoteTransaction, expect: {code: OK}, else: {code: ABORTED, message: "no vote"}}
      - reply: {}
expect:
  - {name: voted, method: gitaly.RefTransaction/VoteTransaction, dir: reverse, min: 1}
  - {name: asked, method: gitaly.OperationService/UserCreateBranch, min: 1}
`)})
	if err != nil {
		t.Fatal(err)
	}
	addr, served := serveLoopback(t, srv)
	voting := make(chan struct{}, 1)
	peer := dialPeer(t, addr, peerOptions{responder: dynamic.ResponderFunc(func(call dynamic.Call) error {
		voting <- struct{}{}
		<-call.Context().Done()
		return call.Context().Err()
	})})
	done := make(chan codes.Code, 1)
	go func() {
		_, st := call(t, ctx, peer, "gitaly.OperationService/UserCreateBranch", `{}`)
		done <- st.Code()
	}()
	<-voting
	sctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(sctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown: %v, want the deadline", err)
	}
	<-served
	if c := <-done; c != codes.Unavailable {
		t.Errorf("the client got %v, want UNAVAILABLE", c)
	}
	if report := srv.Check(); report.OK() {
		t.Errorf("expectations met by calls cut short:\n%s", report)
	}
	for _, ev := range j.all() {
		if ev.Call.Dir == calls.Forward && ev.Call.Status.Code() != codes.Unavailable {
			t.Errorf("forward call journaled as %v, want the UNAVAILABLE its client got", ev.Call.Status.Code())
		}
	}
}

func TestSubscribeFilters(t *testing.T) {
	ctx := testContext(t)
	srv, addr, _ := startServe(t, voteScript)
	peer := dialPeer(t, addr, peerOptions{})
	plain := dialPlain(t, addr)
	call(t, ctx, peer, "gitaly.OperationService/UserCreateBranch", `{}`, tx(1)...)
	call(t, ctx, plain, "gitaly.OperationService/UserCreateBranch", `{}`)
	call(t, ctx, plain, "acme.Users/Get", `{}`)

	collect := func(f Filter) []string {
		var out []string
		for ev := range srv.Subscribe(ctx, SubscribeOptions{Backlog: true, Filter: f}).C {
			out = append(out, ev.Call.Dir.String()+" "+ev.Call.Method)
		}
		return out
	}
	tests := []struct {
		name string
		f    Filter
		want []string
	}{
		{"all", Filter{}, []string{"reverse gitaly.RefTransaction/VoteTransaction", "forward gitaly.OperationService/UserCreateBranch", "forward gitaly.OperationService/UserCreateBranch", "forward acme.Users/Get"}},
		{"reverse", Filter{Dir: calls.Reverse}, []string{"reverse gitaly.RefTransaction/VoteTransaction"}},
		{"glob", Filter{Method: "acme.*/*"}, []string{"forward acme.Users/Get"}},
		{"peer 1", Filter{Peer: 1, HasPeer: true}, []string{"reverse gitaly.RefTransaction/VoteTransaction", "forward gitaly.OperationService/UserCreateBranch"}},
		{"plain", Filter{Peer: 0, HasPeer: true, Dir: calls.Forward}, []string{"forward gitaly.OperationService/UserCreateBranch", "forward acme.Users/Get"}},
		{"code", Filter{Code: codes.Unimplemented, HasCode: true}, []string{"forward acme.Users/Get"}},
		{"after", Filter{AfterID: 3}, []string{"forward acme.Users/Get"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := collect(tc.f); !slices.Equal(got, tc.want) {
				t.Errorf("got %q\nwant %q", got, tc.want)
			}
		})
	}
	if err := (Filter{Method: "[a"}).Validate(); err == nil {
		t.Error("a bad glob validates")
	}
}

func TestSubscribeFollowsLive(t *testing.T) {
	ctx := testContext(t)
	srv, addr, _ := startServe(t, voteScript)
	sub := srv.Subscribe(ctx, SubscribeOptions{Follow: true, Filter: Filter{Method: "gitaly.OperationService/UserDeleteBranch"}})
	plain := dialPlain(t, addr)
	call(t, ctx, plain, "gitaly.OperationService/UserCreateBranch", `{}`)
	call(t, ctx, plain, "gitaly.OperationService/UserDeleteBranch", `{}`)
	select {
	case ev := <-sub.C:
		if ev.Call.Method != "gitaly.OperationService/UserDeleteBranch" || ev.ID != 2 {
			t.Errorf("got %d %s", ev.ID, ev.Call.Method)
		}
	case <-ctx.Done():
		t.Fatal("no live event")
	}
}

// watchHarness runs a serve whose script file is watched, as bcctl serve
// --watch does.
type watchHarness struct {
	t        *testing.T
	ctx      context.Context
	path     string
	srv      *Server
	plain    *grpc.ClientConn
	outcomes chan ReloadOutcome
}

func startWatch(t *testing.T, first string) *watchHarness {
	ctx := testContext(t)
	h := &watchHarness{t: t, ctx: ctx, path: filepath.Join(t.TempDir(), "serve.yaml"), outcomes: make(chan ReloadOutcome)}
	h.write(first)
	srv, addr, _ := startServe(t, first)
	h.srv = srv
	wctx, stop := context.WithCancel(ctx)
	watching := make(chan struct{})
	go func() {
		defer close(watching)
		srv.WatchScript(wctx, WatchOptions{
			Path: h.path, Loaded: []byte(first), Interval: 5 * time.Millisecond,
			Load: func(ctx context.Context, src []byte) (*script.Script, error) {
				return script.Parse(ctx, h.path, src, script.Config{Upstream: corpusSchema(t)})
			},
			Report: func(o ReloadOutcome) { h.outcomes <- o },
		})
	}()
	t.Cleanup(func() { stop(); <-watching })
	h.plain = dialPlain(t, addr)
	return h
}

// write replaces the script file whole: WriteFile truncates first, and a
// watcher that ticks twice between the truncation and the write (a loaded
// machine, a 5ms interval) would see an empty file.
func (h *watchHarness) write(s string) {
	h.t.Helper()
	tmp := h.path + ".tmp"
	if err := os.WriteFile(tmp, []byte(s), 0o644); err != nil {
		h.t.Fatal(err)
	}
	if err := os.Rename(tmp, h.path); err != nil {
		h.t.Fatal(err)
	}
}

// next returns the outcome of the next reload.
func (h *watchHarness) next() ReloadOutcome {
	h.t.Helper()
	select {
	case o := <-h.outcomes:
		return o
	case <-h.ctx.Done():
		h.t.Fatal("no reload")
		return ReloadOutcome{}
	}
}

// get calls acme.Users/Get and returns the answer and status.
func (h *watchHarness) get() (string, *status.Status) {
	h.t.Helper()
	return call(h.t, h.ctx, h.plain, "acme.Users/Get", `{}`)
}

func TestWatchScriptKeepsTheOldScriptOnError(t *testing.T) {
	const v1 = "rules:\n  - {match: {method: acme.Users/Get}, reply: {name: v1}}\n"
	h := startWatch(t, v1)
	h.write("rules:\n  - {match: {method: acme.Users/Get}, reply: {nme: v2}}\n")
	o := h.next()
	if o.Err == nil || !strings.Contains(o.Err.Error(), "serve.yaml:2:47") || !strings.Contains(o.Err.Error(), `did you mean "name"`) {
		t.Errorf("reload of a bad script: %v, want the file:line:col and a suggestion", o.Err)
	}
	if got, _ := h.get(); got != `{"name":"v1"}` {
		t.Errorf("after a failed reload: %s, want the old script's answer", got)
	}
	if st := h.srv.ScriptState(); st.Name != "serve.yaml" || st.Reloads != 0 || !strings.Contains(st.LastError, "nme") {
		t.Errorf("script state after a failed reload: %+v", st)
	}
	h.write("rules:\n  - {match: {method: acme.Users/Get}, reply: {name: v3}}\n")
	if o := h.next(); o.Err != nil || o.Script == nil {
		t.Fatalf("reload of a good script: %v", o.Err)
	}
	if got, _ := h.get(); got != `{"name":"v3"}` {
		t.Errorf("after a reload: %s, want the new script's answer", got)
	}
	if st := h.srv.ScriptState(); st.Name != h.path || st.Reloads != 1 || st.LastError != "" {
		t.Errorf("script state after a reload: %+v", st)
	}
}

// TestWatchScriptRefusesAnEmptyReload empties the watched file: the reload
// is refused like a bad script (the rules and the expectations stay),
// until the file says explicitly that it wants no rules.
func TestWatchScriptRefusesAnEmptyReload(t *testing.T) {
	const v1 = "rules:\n  - {match: {method: acme.Users/Get}, reply: {name: v1}}\nexpect:\n  - {method: acme.Users/Get, min: 1}\n"
	h := startWatch(t, v1)
	for _, empty := range []string{"", "# nothing yet\n", "vars: {a: 1}\n"} {
		h.write(empty)
		if o := h.next(); !errors.Is(o.Err, ErrEmptyReload) || o.Script != nil {
			t.Fatalf("reload of %q: %v, want ErrEmptyReload", empty, o.Err)
		}
		if got, _ := h.get(); got != `{"name":"v1"}` {
			t.Errorf("after the reload of %q was refused: %s, want the old script's answer", empty, got)
		}
	}
	if n := len(h.srv.Check().Results); n != 1 {
		t.Errorf("%d expectations after the refused reloads, want the old script's 1", n)
	}
	h.write("rules: []\n")
	if o := h.next(); o.Err != nil {
		t.Fatalf("reload of an explicit `rules: []`: %v", o.Err)
	}
	if _, st := h.get(); st.Code() != codes.Unimplemented {
		t.Errorf("with `rules: []` in force: %v, want UNIMPLEMENTED", st)
	}
}

func TestMutualTLS(t *testing.T) {
	ctx := testContext(t)
	pki := newTestPKI(t)
	logs := newLogRecorder()
	srv, addr, _ := startServe(t, voteScript, func(c *Config) {
		c.Creds = credentials.NewTLS(&tls.Config{
			Certificates: []tls.Certificate{pki.server},
			ClientCAs:    pki.pool,
			ClientAuth:   tls.RequireAndVerifyClientCert,
		})
		c.Logger = logs.logger()
	})
	clientTLS := credentials.NewTLS(&tls.Config{RootCAs: pki.pool, Certificates: []tls.Certificate{pki.client}, ServerName: "127.0.0.1"})
	peer := dialPeer(t, addr, peerOptions{creds: clientTLS})
	if got, st := call(t, ctx, peer, "gitaly.OperationService/UserCreateBranch", `{"branch_name": "dGxz"}`, tx(3)...); st.Code() != codes.OK {
		t.Fatalf("vote flow over mTLS: %s %v", got, st)
	}
	if p := waitPeers(t, ctx, srv, 1)[0]; p.ReverseCalls != 1 || p.Discovery != DiscoveryDone {
		t.Errorf("peer over mTLS: %+v", p)
	}

	// Without a client certificate: refused, and reported.
	noCert := credentials.NewTLS(&tls.Config{RootCAs: pki.pool, ServerName: "127.0.0.1"})
	other := dialPeer(t, addr, peerOptions{creds: noCert})
	if _, st := call(t, ctx, other, "gitaly.OperationService/UserCreateBranch", `{}`); st.Code() != codes.Unavailable {
		t.Errorf("without a client certificate: %v, want UNAVAILABLE", st)
	}
	logs.wait(t, ctx, "connection rejected")
}

// testPKI is a CA with a server certificate for 127.0.0.1 and a client
// certificate.
type testPKI struct {
	pool           *x509.CertPool
	server, client tls.Certificate
}

func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bcctl test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	issue := func(serial int64, usage x509.ExtKeyUsage, ips []net.IP) tls.Certificate {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "bcctl test"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	}
	return &testPKI{
		pool:   pool,
		server: issue(2, x509.ExtKeyUsageServerAuth, []net.IP{net.ParseIP("127.0.0.1")}),
		client: issue(3, x509.ExtKeyUsageClientAuth, nil),
	}
}
