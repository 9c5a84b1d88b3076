package client_test

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/client"
	"github.com/bcctl/bcctl/internal/corpus"
	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/host"
	"github.com/bcctl/bcctl/internal/journal"
	"github.com/bcctl/bcctl/internal/script"
	"github.com/bcctl/bcctl/internal/serve"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func corpusFiles(t *testing.T) *dynamic.FileSource {
	t.Helper()
	src, err := dynamic.NewSourceFromProtosetBytes(corpus.Protoset)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// upstream is a bcctl serve on 127.0.0.1, run by serve.Run, that votes
// through its caller's backchannel before it creates a branch, as Gitaly
// does.
type upstream struct {
	srv  *serve.Server
	addr string
	stop func() // stops it and waits until it has
}

const upstreamScript = `
rules:
  - name: vote-first
    match: {method: gitaly.OperationService/UserCreateBranch}
    do:
      - call:
          method: gitaly.RefTransaction/VoteTransaction
          with: {transaction_id: 7}
          as: vote
      - reply: {branch: {name: "${req.branch_name}"}}
`

func startUpstream(t *testing.T) *upstream {
	t.Helper()
	return startUpstreamWith(t, upstreamScript)
}

// startUpstreamWith starts an upstream that answers with the script src.
func startUpstreamWith(t *testing.T, scriptSrc string) *upstream {
	t.Helper()
	src := corpusFiles(t)
	sc, err := script.Parse(context.Background(), "upstream.yaml", []byte(scriptSrc), script.Config{Upstream: src})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := serve.New(serve.Config{Schema: src, Script: sc})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	serving := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		_, err := serve.Run(ctx, serve.RunConfig{
			Service: srv,
			Listen:  []serve.ListenFunc{func() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }},
			Grace:   10 * time.Second,
			Serving: func(l serve.Listening) { serving <- l.Listen[0] },
		})
		done <- err
	}()
	u := &upstream{srv: srv}
	select {
	case u.addr = <-serving:
	case err := <-done:
		cancel()
		t.Fatalf("serve.Run: %v", err)
	}
	var once sync.Once
	u.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve.Run: %v", err)
			}
		})
	}
	t.Cleanup(u.stop)
	return u
}

// peer waits until the upstream has a peer and returns its ID.
func (u *upstream) peer(t *testing.T, ctx context.Context) backchannel.ID {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	snapshot, changes := u.srv.WatchPeers(ctx)
	if len(snapshot) > 0 {
		return snapshot[0].ID
	}
	for c := range changes {
		if c.Kind == serve.PeerJoined {
			return c.Peer.ID
		}
	}
	t.Fatal("no peer joined the upstream")
	return 0
}

// callPeer makes a reverse call into peer id and returns how it ended.
func (u *upstream) callPeer(t *testing.T, ctx context.Context, id backchannel.ID, method, req string) *status.Status {
	t.Helper()
	ev, err := u.srv.CallPeer(ctx, serve.PeerCall{Peer: id, Method: method, Request: []byte(req)})
	if err != nil {
		t.Fatalf("CallPeer %s: %v", method, err)
	}
	return ev.Call.Status
}

// entries collects what the session's tap receives.
type entries struct {
	mu  sync.Mutex
	all []journal.Entry
}

func (e *entries) tap(en journal.Entry) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.all = append(e.all, en)
}

func (e *entries) list() []journal.Entry {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]journal.Entry(nil), e.all...)
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func dialConfig(addr string) *host.Config {
	return &host.Config{Network: "tcp", Address: addr, Creds: insecure.NewCredentials()}
}

func filesOf(src *dynamic.FileSource) func(context.Context) (*dynamic.FileSource, error) {
	return func(context.Context) (*dynamic.FileSource, error) { return src, nil }
}

const voteAnswer = `
backchannel:
  - name: commit
    match: {method: gitaly.RefTransaction/VoteTransaction}
    reply: {state: COMMIT}
expect:
  - {method: gitaly.RefTransaction/VoteTransaction, dir: reverse, count: 1}
  - {method: gitaly.OperationService/UserCreateBranch, dir: forward, count: 1}
`

// TestInvokeJournalsBothDirections: a forward call whose server votes
// through the backchannel is journaled with the vote the script answered,
// tapped in order, written to the journal file and counted for the
// expectations.
func TestInvokeJournalsBothDirections(t *testing.T) {
	ctx := testCtx(t)
	up := startUpstream(t)
	src := corpusFiles(t)
	var got entries
	journalPath := filepath.Join(t.TempDir(), "calls.jsonl")
	s, err := client.Open(ctx, client.Config{
		Dial: dialConfig(up.addr), Target: up.addr,
		Schema:      client.Schema{Files: filesOf(src)},
		Backchannel: &client.Backchannel{Script: writeFile(t, "vote.yaml", voteAnswer)},
		Journal:     journalPath, Tap: got.tap,
	})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	md, err := dynamic.FindMethod(ctx, s.Forward(), "gitaly.OperationService/UserCreateBranch")
	if err != nil {
		t.Fatal(err)
	}
	sent := false
	fc, err := s.Invoke(ctx, client.Invocation{
		Method: md, Metadata: metadata.Pairs("x-transaction", "7"),
		Next: func(m proto.Message) error {
			if sent {
				return io.EOF
			}
			sent = true
			return protojson.Unmarshal([]byte(`{"branch_name": "ZmVhdHVyZS94"}`), m) // feature/x
		},
	})
	if err != nil || fc == nil {
		t.Fatalf("Invoke = %v, %v", fc, err)
	}
	if fc.Status.Code() != codes.OK || fc.JournalErr != nil {
		t.Fatalf("the call ended %v (journal: %v), want OK", fc.Status, fc.JournalErr)
	}
	if fc.Entry.Method != "gitaly.OperationService/UserCreateBranch" || fc.Entry.By != journal.ByCLI || fc.Entry.Peer == nil || fc.Entry.Peer.Addr != up.addr {
		t.Errorf("the forward entry is %+v, want UserCreateBranch made by the CLI to %s", fc.Entry, up.addr)
	}
	all := got.list()
	if len(all) != 2 || all[0].Dir != journal.DirReverse || all[0].Rule == nil || all[0].Rule.Name != "commit" || all[1].ID != fc.Entry.ID {
		t.Fatalf("tapped %+v, want the vote answered by rule commit, then the forward call", all)
	}
	if r := s.Check(); r == nil || !r.OK() {
		t.Errorf("expectations: %v, want both met", r)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	data, err := os.ReadFile(journalPath)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), "\n"); n != 2 {
		t.Errorf("the journal file has %d lines, want 2:\n%s", n, data)
	}
}

// TestInvokeWithoutStatus: a request that cannot be read ends the call
// without a status, and nothing is journaled.
func TestInvokeWithoutStatus(t *testing.T) {
	ctx := testCtx(t)
	up := startUpstream(t)
	var got entries
	s, err := client.Open(ctx, client.Config{Dial: dialConfig(up.addr), Target: up.addr, Schema: client.Schema{Files: filesOf(corpusFiles(t))}, Tap: got.tap})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	md, err := dynamic.FindMethod(ctx, s.Forward(), "acme.Users/Get")
	if err != nil {
		t.Fatal(err)
	}
	errBad := errors.New("bad request")
	fc, err := s.Invoke(ctx, client.Invocation{Method: md, Next: func(proto.Message) error { return errBad }})
	if fc != nil || !errors.Is(err, errBad) {
		t.Errorf("Invoke = %v, %v; want no call and the request's error", fc, err)
	}
	if all := got.list(); len(all) != 0 {
		t.Errorf("journaled %+v, want nothing", all)
	}
}

// TestWaitReverse: the wait ends when the calls came, when the server
// hangs up, or when the context ends, and says which.
func TestWaitReverse(t *testing.T) {
	open := func(t *testing.T, up *upstream) *client.Session {
		t.Helper()
		s, err := client.Open(testCtx(t), client.Config{
			Dial: dialConfig(up.addr), Target: up.addr, Schema: client.Schema{Files: filesOf(corpusFiles(t))},
			Backchannel: &client.Backchannel{Script: writeFile(t, "vote.yaml", voteAnswer)},
		})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	t.Run("reached", func(t *testing.T) {
		ctx := testCtx(t)
		up := startUpstream(t)
		s := open(t, up)
		if st := up.callPeer(t, ctx, up.peer(t, ctx), "gitaly.RefTransaction/VoteTransaction", `{}`); st.Code() != codes.OK {
			t.Fatalf("the vote ended %v", st)
		}
		if end := s.WaitReverse(ctx, 1); end != client.WaitReached {
			t.Errorf("WaitReverse = %v, want %v", end, client.WaitReached)
		}
	})
	t.Run("lost", func(t *testing.T) {
		ctx := testCtx(t)
		up := startUpstream(t)
		s := open(t, up)
		up.stop()
		for _, n := range []int{0, 1} {
			if end := s.WaitReverse(ctx, n); end != client.WaitLost {
				t.Errorf("WaitReverse(%d) = %v, want %v", n, end, client.WaitLost)
			}
		}
	})
	t.Run("canceled", func(t *testing.T) {
		up := startUpstream(t)
		s := open(t, up)
		ctx, cancel := context.WithCancel(testCtx(t))
		cancel()
		for _, n := range []int{0, 1} {
			if end := s.WaitReverse(ctx, n); end != client.WaitCanceled {
				t.Errorf("WaitReverse(%d) = %v, want %v", n, end, client.WaitCanceled)
			}
		}
	})
}

// TestUnhostedSaysHowToHost: without a script or a hosted schema, a
// reverse call is told how to start bcctl so that it is answered.
func TestUnhostedSaysHowToHost(t *testing.T) {
	ctx := testCtx(t)
	up := startUpstream(t)
	s, err := client.Open(ctx, client.Config{
		Dial: dialConfig(up.addr), Target: up.addr, Schema: client.Schema{Reflection: true},
		Backchannel: &client.Backchannel{},
	})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	st := up.callPeer(t, ctx, up.peer(t, ctx), "gitaly.RefTransaction/VoteTransaction", `{}`)
	if st.Code() != codes.Unimplemented || !strings.Contains(st.Message(), "start bcctl with --answer SCRIPT") {
		t.Errorf("the reverse call ended %v, want UNIMPLEMENTED saying how to host it", st)
	}
	if s.Check() != nil {
		t.Error("Check without a script should be nil")
	}
}

// TestResponderReports: a Responder of its own (the TUI's) answers a call
// and reports it: the report is journaled as the Responder's and counted
// for the script's expectations, and the Responder is closed with the
// session.
func TestResponderReports(t *testing.T) {
	ctx := testCtx(t)
	up := startUpstream(t)
	var got entries
	r := &reportingResponder{}
	s, err := client.Open(ctx, client.Config{
		Dial: dialConfig(up.addr), Target: up.addr, Schema: client.Schema{Files: filesOf(corpusFiles(t))},
		Backchannel: &client.Backchannel{
			Script: writeFile(t, "expect.yaml", "expect:\n  - {method: gitaly.RefTransaction/VoteTransaction, dir: reverse, count: 1}\n"),
			Responder: func(env client.ResponderEnv) (dynamic.Responder, error) {
				r.env = env
				return r, nil
			},
		},
		Tap: got.tap,
	})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if st := up.callPeer(t, ctx, up.peer(t, ctx), "gitaly.RefTransaction/VoteTransaction", `{}`); st.Code() != codes.OK {
		t.Fatalf("the vote ended %v", st)
	}
	if all := got.list(); len(all) != 1 || all[0].By != journal.ByTUI {
		t.Errorf("tapped %+v, want one call answered by the TUI", all)
	}
	if rep := s.Check(); rep == nil || !rep.OK() {
		t.Errorf("expectations: %v, want the reported call counted", rep)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if !r.closed {
		t.Error("the Responder was not closed with the session")
	}
}

// reportingResponder answers every reverse call with an empty reply and
// reports it as the TUI does.
type reportingResponder struct {
	env    client.ResponderEnv
	closed bool
}

func (r *reportingResponder) Respond(call dynamic.Call) error {
	start := time.Now()
	req, err := call.Recv()
	if err != nil {
		return err
	}
	reply := dynamicpb.NewMessage(call.Method().Output())
	if err := call.Send(reply); err != nil {
		return err
	}
	r.env.Report(&calls.Event{
		Dir: calls.Reverse, Origin: calls.Answered, Peer: call.Peer(), Method: dynamic.MethodName(call.Method()),
		Requests: []proto.Message{req}, Responses: []proto.Message{reply},
		Status: status.New(codes.OK, ""), Start: start, Duration: time.Since(start),
	}, journal.ByTUI)
	return nil
}

func (r *reportingResponder) Close() error {
	r.closed = true
	return nil
}

// TestOpenErrors: what cannot be opened is named, and nothing is left
// open.
func TestOpenErrors(t *testing.T) {
	up := startUpstream(t)
	tests := []struct {
		name string
		cfg  client.Config
		want string
		is   error
	}{{
		name: "journal",
		cfg:  client.Config{Journal: filepath.Join(t.TempDir(), "missing", "calls.jsonl"), Schema: client.Schema{Files: filesOf(corpusFiles(t))}},
		want: "--journal: ",
	}, {
		name: "script",
		cfg: client.Config{
			Dial: dialConfig(up.addr), Target: up.addr, Schema: client.Schema{Files: filesOf(corpusFiles(t))},
			Backchannel: &client.Backchannel{Script: writeFile(t, "bad.yaml", "backchannel:\n  - match: {method: gitaly.RefTransaction/Nope}\n    reply: {}\n")},
		},
		want: "--answer: ",
	}, {
		name: "no schema",
		cfg:  client.Config{Dial: dialConfig(up.addr), Target: up.addr},
		is:   client.ErrNoSchema,
	}, {
		name: "reflection without a server",
		cfg:  client.Config{Schema: client.Schema{Reflection: true}},
		is:   client.ErrNoAddress,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := client.Open(testCtx(t), tc.cfg)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if tc.want != "" && !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error %q, want it to start with %q", err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v, want %v", err, tc.is)
			}
		})
	}
}
