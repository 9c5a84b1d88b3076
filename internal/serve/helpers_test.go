package serve

import (
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/internal/corpus"
	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/script"
)

func TestMain(m *testing.M) {
	runFarmIfAsked()
	goleak.VerifyTestMain(m)
}

func corpusProtoset() []byte { return corpus.Protoset }

// testContext ends with the test or after 60s.
func testContext(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

var (
	corpusOnce sync.Once
	corpusSrc  *dynamic.FileSource
	corpusErr  error
)

// corpusSchema is the schema of internal/corpus.
func corpusSchema(t testing.TB) *dynamic.FileSource {
	t.Helper()
	corpusOnce.Do(func() { corpusSrc, corpusErr = dynamic.NewSourceFromProtosetBytes(corpus.Protoset) })
	if corpusErr != nil {
		t.Fatal(corpusErr)
	}
	return corpusSrc
}

func parseScript(t testing.TB, name, src string) *script.Script {
	t.Helper()
	sc, err := script.Parse(context.Background(), name, []byte(src), script.Config{Upstream: corpusSchema(t)})
	if err != nil {
		t.Fatalf("parse %s: %v", name, err)
	}
	return sc
}

// voteScript asks the caller to vote before it creates a feature branch;
// other branches are created without a vote.
const voteScript = `
rules:
  - name: vote-before-branch
    match:
      method: gitaly.OperationService/UserCreateBranch
      metadata: {gitaly-reference-transaction: {exists: true}}
    do:
      - call:
          method: gitaly.RefTransaction/VoteTransaction
          with:
            transaction_id: "${meta.gitaly-reference-transaction | b64dec | fromjson.id}"
            node: "${meta.gitaly-reference-transaction | b64dec | fromjson.node}"
            reference_updates_hash: "${req.branch_name | sha1}"
            phase: PREPARED_PHASE
          expect: {code: OK, reply: {state: COMMIT}}
          as: vote
          else: {code: ABORTED, message: "vote: ${vote.code} ${vote.message}"}
      - reply: {branch: {name: "${req.branch_name}", target_commit: {id: voted}}}
  - name: no-vote
    match: {method: gitaly.OperationService/UserCreateBranch}
    reply: {branch: {name: "${req.branch_name}", target_commit: {id: unvoted}}}
  - name: stop-all
    match: {method: gitaly.OperationService/UserDeleteBranch}
    do:
      - call: {method: gitaly.RefTransaction/StopTransaction, to: all, with: {transaction_id: 9}, expect: {code: OK}}
      - reply: {}
expect:
  - {name: votes, method: gitaly.RefTransaction/VoteTransaction, dir: reverse, min: 1}
`

// peerScript is what test peers answer on their backchannel.
const peerScript = `
backchannel:
  - match: {method: gitaly.RefTransaction/VoteTransaction}
    reply: {state: COMMIT}
  - match: {method: gitaly.RefTransaction/StopTransaction}
    reply: {}
`

// memJournal keeps every event the server writes.
type memJournal struct {
	mu     sync.Mutex
	events []*Event
	// grew, when not nil, is closed at the next event.
	grew chan struct{}
	// sync, when set, returns once the server's journal queue has handed
	// over every event recorded so far.
	sync func()
}

func (j *memJournal) WriteEvent(ev *Event) error {
	j.mu.Lock()
	j.events = append(j.events, ev)
	if j.grew != nil {
		close(j.grew)
		j.grew = nil
	}
	j.mu.Unlock()
	return nil
}

// waitFor returns the events once there are at least n, for calls whose
// entry is written after their client has its status (those gRPC or the
// codec ends before a handler: serve hears of them from grpc-go's stats
// handler, after the status went out).
func (j *memJournal) waitFor(ctx context.Context, t testing.TB, n int) []*Event {
	t.Helper()
	for {
		j.mu.Lock()
		if len(j.events) >= n {
			defer j.mu.Unlock()
			return append([]*Event(nil), j.events...)
		}
		if j.grew == nil {
			j.grew = make(chan struct{})
		}
		grew := j.grew
		j.mu.Unlock()
		select {
		case <-grew:
		case <-ctx.Done():
			t.Fatalf("journal: waiting for %d events: %v (have %d)", n, ctx.Err(), len(j.all()))
		}
	}
}

// all returns the events recorded so far.
func (j *memJournal) all() []*Event {
	if j.sync != nil {
		j.sync()
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]*Event(nil), j.events...)
}

// serveLoopback serves srv on a new listener on 127.0.0.1 and returns its
// address and what Serve returns, once it has returned. Stopping srv is
// the caller's.
func serveLoopback(t testing.TB, srv *Server) (string, <-chan error) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	return lis.Addr().String(), served
}

// startServe runs a Server for src on 127.0.0.1 and shuts it down when the
// test ends.
func startServe(t testing.TB, src string, configure ...func(*Config)) (*Server, string, *memJournal) {
	t.Helper()
	j := &memJournal{}
	cfg := Config{Schema: corpusSchema(t), Script: parseScript(t, "serve.yaml", src), Journal: j}
	for _, c := range configure {
		c(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if srv.journal != nil {
		j.sync = srv.journal.sync
	}
	addr, done := serveLoopback(t, srv)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return srv, addr, j
}

// peerOptions configure a test peer.
type peerOptions struct {
	creds     credentials.TransportCredentials
	responder dynamic.Responder // default: peerScript
	noReflect bool
	services  []string // default: gitaly.RefTransaction
}

// dialPeer connects a multiplexed peer to addr that serves services on its
// backchannel, answered by a script (or opts.responder). The connection is
// made at once; the peer is closed when the test ends.
func dialPeer(t testing.TB, addr string, opts peerOptions) *grpc.ClientConn {
	t.Helper()
	r := opts.responder
	if r == nil {
		r = script.NewEngine(parseScript(t, "peer.yaml", peerScript), script.Downstream, script.Options{})
	}
	names := opts.services
	if names == nil {
		names = []string{"gitaly.RefTransaction"}
	}
	var services []protoreflect.ServiceDescriptor
	for _, n := range names {
		d, err := corpusSchema(t).FindSymbol(context.Background(), n)
		if err != nil {
			t.Fatal(err)
		}
		services = append(services, d.(protoreflect.ServiceDescriptor))
	}
	factory := func() backchannel.Server {
		srv := grpc.NewServer()
		if err := dynamic.RegisterServices(srv, services, r); err != nil {
			panic(err)
		}
		if !opts.noReflect {
			dynamic.RegisterReflection(srv, services)
		}
		return srv
	}
	creds := opts.creds
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	hs := backchannel.NewClientHandshaker(nil, factory, backchannel.DefaultConfiguration())
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(hs.ClientHandshake(creds)))
	if err != nil {
		t.Fatal(err)
	}
	conn.Connect()
	t.Cleanup(func() { conn.Close() })
	return conn
}

// dialPlain connects a plain gRPC client.
func dialPlain(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// call invokes a unary corpus method with a JSON request and returns the
// response as compact JSON (proto names) and the status.
func call(t testing.TB, ctx context.Context, conn grpc.ClientConnInterface, method, req string, kv ...string) (string, *status.Status) {
	t.Helper()
	d, err := dynamic.FindMethod(ctx, corpusSchema(t), method)
	if err != nil {
		t.Fatal(err)
	}
	in := dynamicpb.NewMessage(d.Input())
	if err := protojson.Unmarshal([]byte(req), in); err != nil {
		t.Fatalf("request %s: %v", req, err)
	}
	out := dynamicpb.NewMessage(d.Output())
	if len(kv) > 0 {
		ctx = metadata.AppendToOutgoingContext(ctx, kv...)
	}
	err = conn.Invoke(ctx, dynamic.FullMethod(d), in, out)
	if err != nil {
		return "", status.Convert(err)
	}
	return compact(t, out), status.Convert(nil)
}

// compact renders m on one line with proto names, bytes fields as their
// text (as --bytes text shows them), so expected replies read as written.
func compact(t testing.TB, m proto.Message) string {
	t.Helper()
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(dynamic.BytesAsText(b, m.ProtoReflect().Descriptor(), nil))
}

// tx is the metadata Praefect sends with a request in transaction id
// (gitaly-reference-transaction), as key and value for call.
func tx(id int) []string {
	js := fmt.Sprintf(`{"id":%d,"node":"gitaly-1","primary":true}`, id)
	return []string{"gitaly-reference-transaction", base64.StdEncoding.EncodeToString([]byte(js))}
}

// waitPeers waits until the server has n peers whose discovery is settled.
func waitPeers(t testing.TB, ctx context.Context, srv *Server, n int) []PeerView {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	snapshot, changes := srv.WatchPeers(ctx)
	peers := map[backchannel.ID]PeerView{}
	for _, p := range snapshot {
		peers[p.ID] = p
	}
	settled := func() bool {
		if len(peers) != n {
			return false
		}
		for _, p := range peers {
			if p.Discovery == DiscoveryPending {
				return false
			}
		}
		return true
	}
	for !settled() {
		select {
		case c, ok := <-changes:
			if !ok {
				t.Fatalf("watch ended with %d peers, want %d", len(peers), n)
			}
			if c.Kind == PeerLeft {
				delete(peers, c.Peer.ID)
			} else {
				peers[c.Peer.ID] = c.Peer
			}
		case <-ctx.Done():
			t.Fatalf("waiting for %d peers: have %d: %v", n, len(peers), ctx.Err())
		}
	}
	return srv.Peers()
}

// logRecorder is a slog handler that keeps every record as text and
// announces each on C.
type logRecorder struct {
	mu    sync.Mutex
	lines []string
	C     chan string
}

func newLogRecorder() *logRecorder { return &logRecorder{C: make(chan string, 1024)} }

func (l *logRecorder) logger() *slog.Logger { return slog.New(l) }

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Level.String() + " " + r.Message)
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.Key + "=" + a.Value.String())
		return true
	})
	line := b.String()
	l.mu.Lock()
	l.lines = append(l.lines, line)
	l.mu.Unlock()
	select {
	case l.C <- line:
	default:
	}
	return nil
}

func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

func (l *logRecorder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// waitLog waits for a log line containing want.
func (l *logRecorder) wait(t testing.TB, ctx context.Context, want string) string {
	t.Helper()
	for {
		select {
		case line := <-l.C:
			if strings.Contains(line, want) {
				return line
			}
		case <-ctx.Done():
			t.Fatalf("no log line with %q; log:\n%s", want, l.String())
		}
	}
}
