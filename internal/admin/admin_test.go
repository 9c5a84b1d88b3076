package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/bcctl/bcctl/internal/admin/adminpb"
	"github.com/bcctl/bcctl/internal/corpus"
	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/host"
	"github.com/bcctl/bcctl/internal/journal"
	"github.com/bcctl/bcctl/internal/script"
	"github.com/bcctl/bcctl/internal/serve"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testContext(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func corpusSchema(t testing.TB) *dynamic.FileSource {
	t.Helper()
	src, err := dynamic.NewSourceFromProtosetBytes(corpus.Protoset)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

const serveScript = `
rules:
  - name: vote
    match: {method: gitaly.OperationService/UserCreateBranch}
    do:
      - call: {method: gitaly.RefTransaction/VoteTransaction, with: {transaction_id: 1}, expect: {code: OK}}
      - reply: {}
expect:
  - {name: votes, method: gitaly.RefTransaction/VoteTransaction, dir: reverse, min: 2}
`

const peerScript = `
backchannel:
  - match: {method: gitaly.RefTransaction/VoteTransaction, request: {transaction_id: 13}}
    fail: {code: FAILED_PRECONDITION, message: "unlucky", details: [{"@type": google.rpc.ErrorInfo, reason: UNLUCKY}]}
  - match: {method: gitaly.RefTransaction/VoteTransaction}
    headers: {x-voter: peer}
    reply: {state: ABORT}
`

// env is a serve with its admin API, on 127.0.0.1 or a unix socket.
type env struct {
	srv       *serve.Server
	addr      string // serve's main port
	adminAddr string
	client    *Client
}

func start(t *testing.T, adminAddr string) *env {
	t.Helper()
	ctx := testContext(t)
	src := corpusSchema(t)
	sc, err := script.Parse(ctx, "serve.yaml", []byte(serveScript), script.Config{Upstream: src})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := serve.New(serve.Config{Schema: src, Script: sc})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckAddress(ctx, adminAddr); err != nil {
		t.Fatal(err)
	}
	alis, err := serve.Listen(adminAddr)
	if err != nil {
		t.Fatal(err)
	}
	adm, err := NewServer(srv, Options{Listen: []string{lis.Addr().String()}})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	go adm.Serve(alis)
	e := &env{srv: srv, addr: lis.Addr().String(), adminAddr: serve.ListenURL(alis)}
	e.client, err = NewClient(e.adminAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.client.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		adm.Stop()
	})
	return e
}

// peer connects a multiplexed peer that answers VoteTransaction with
// peerScript.
func (e *env) peer(t *testing.T) *host.Conn {
	t.Helper()
	ctx := testContext(t)
	src := corpusSchema(t)
	conn, err := host.Dial(ctx, host.Config{Network: "tcp", Address: e.addr, Creds: insecure.NewCredentials()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	sc, err := script.Parse(ctx, "peer.yaml", []byte(peerScript), script.Config{Upstream: src})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := src.FindSymbol(ctx, "gitaly.RefTransaction")
	if err := conn.Host(host.Backchannel{
		Services:  []protoreflect.ServiceDescriptor{d.(protoreflect.ServiceDescriptor)},
		Responder: script.NewEngine(sc, script.Downstream, script.Options{}),
	}); err != nil {
		t.Fatal(err)
	}
	return conn
}

// waitPeers waits until the admin API lists n peers with their services
// discovered.
func (e *env) waitPeers(t *testing.T, ctx context.Context, n int) []*adminpb.Peer {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	peers := map[uint64]*adminpb.Peer{}
	done := errors.New("done")
	settled := func() bool {
		if len(peers) != n {
			return false
		}
		for _, p := range peers {
			if p.Discovery == "pending" {
				return false
			}
		}
		return true
	}
	err := e.client.WatchPeers(ctx, func(ps []*adminpb.Peer) error {
		for _, p := range ps {
			peers[p.Id] = p
		}
		if settled() {
			return done
		}
		return nil
	}, func(c *adminpb.PeerChange) error {
		if c.Kind == "left" {
			delete(peers, c.Peer.Id)
		} else {
			peers[c.Peer.Id] = c.Peer
		}
		if settled() {
			return done
		}
		return nil
	})
	if err != done {
		t.Fatalf("waiting for %d peers: %v (have %d)", n, err, len(peers))
	}
	list, err := e.client.Peers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return list
}

func TestAdminAPI(t *testing.T) {
	ctx := testContext(t)
	e := start(t, "127.0.0.1:0")
	conn := e.peer(t)

	// A forward call that makes the script vote (ABORT is still OK for
	// the script's expect: code OK).
	if err := conn.ClientConn().Invoke(ctx, "/gitaly.OperationService/UserCreateBranch", emptyMsg(t, "gitaly.UserCreateBranchRequest"), emptyMsg(t, "gitaly.UserCreateBranchResponse")); err != nil {
		t.Fatalf("UserCreateBranch: %v", err)
	}

	peers := e.waitPeers(t, ctx, 1)
	p := peers[0]
	if p.Id != 1 || p.ForwardCalls != 1 || p.ReverseCalls != 1 || !slices.Equal(p.Services, []string{"gitaly.RefTransaction", "grpc.health.v1.Health"}) ||
		p.Discovery != "done" || p.LastCall == nil || p.LastCall.Dir != "forward" || p.ConnectedAt == nil || !strings.HasPrefix(p.RemoteAddr, "127.0.0.1:") {
		t.Errorf("peer: %+v", p)
	}

	// Expectations: one vote so far, two wanted.
	exp, err := e.client.CheckExpectations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if exp.Ok || len(exp.Results) != 1 || exp.Results[0].Count != 1 || exp.Results[0].Name != "votes" || exp.Results[0].Pos != "serve.yaml:9:5" ||
		!strings.Contains(exp.Report, "FAIL votes (serve.yaml:9): want at least 2 reverse calls to gitaly.RefTransaction/VoteTransaction, got 1") {
		t.Errorf("expectations: %+v", exp)
	}

	// A reverse call from the admin API.
	resp, err := e.client.CallPeer(ctx, &adminpb.CallPeerRequest{PeerId: 1, Method: "gitaly.RefTransaction/VoteTransaction", RequestJson: `{"transaction_id": 7}`})
	if err != nil {
		t.Fatalf("CallPeer: %v", err)
	}
	if resp.Code != "OK" || !slices.Equal(resp.ResponsesJson, []string{`{"state":"ABORT"}`}) || resp.JournalId != 3 ||
		!slices.ContainsFunc(resp.Header, func(m *adminpb.Metadata) bool {
			return proto.Equal(m, &adminpb.Metadata{Key: "x-voter", Value: "peer"})
		}) || resp.Method != "gitaly.RefTransaction/VoteTransaction" {
		t.Errorf("CallPeer: %+v", resp)
	}
	// ... whose own status is an error, with details.
	resp, err = e.client.CallPeer(ctx, &adminpb.CallPeerRequest{PeerId: 1, Method: "gitaly.RefTransaction.VoteTransaction", RequestJson: `{"transaction_id": 13}`})
	if err != nil {
		t.Fatalf("CallPeer: %v", err)
	}
	if resp.Code != "FAILED_PRECONDITION" || resp.Message != "unlucky" || len(resp.DetailsJson) != 1 || !strings.Contains(resp.DetailsJson[0], `"reason":"UNLUCKY"`) {
		t.Errorf("CallPeer failing: %+v", resp)
	}
	exp, err = e.client.CheckExpectations(ctx)
	if err != nil || !exp.GetOk() {
		t.Errorf("expectations after two admin calls: %+v %v", exp, err)
	}

	// Calls that cannot be made.
	for _, tc := range []struct {
		req  *adminpb.CallPeerRequest
		code codes.Code
		want string
	}{
		{&adminpb.CallPeerRequest{PeerId: 9, Method: "gitaly.RefTransaction/VoteTransaction"}, codes.NotFound, "peer 9 is not connected (connected: 1)"},
		{&adminpb.CallPeerRequest{PeerId: 1, Method: "gitaly.RefTransaction/Vote"}, codes.NotFound, "VoteTransaction"},
		{&adminpb.CallPeerRequest{PeerId: 1, Method: "gitaly.RefTransaction/VoteTransaction", RequestJson: `{"state": 1}`}, codes.InvalidArgument, `"state"`},
		{&adminpb.CallPeerRequest{Method: "gitaly.RefTransaction/VoteTransaction"}, codes.InvalidArgument, "peer_id is required"},
	} {
		_, err := e.client.CallPeer(ctx, tc.req)
		if st := status.Convert(err); st.Code() != tc.code || !strings.Contains(st.Message(), tc.want) {
			t.Errorf("CallPeer(%+v): %v, want %s with %q", tc.req, err, tc.code, tc.want)
		}
	}

	// The journal: the backlog, filtered.
	var lines []*adminpb.StreamJournalResponse
	err = e.client.Journal(ctx, &adminpb.StreamJournalRequest{Dir: "reverse"}, func(l *adminpb.StreamJournalResponse) error { lines = append(lines, l); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 3 {
		t.Fatalf("journal: %d reverse entries, want 3", len(lines))
	}
	var first, admin journal.Entry
	if err := json.Unmarshal([]byte(lines[0].Line), &first); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[1].Line), &admin); err != nil {
		t.Fatal(err)
	}
	if first.ID != 2 || first.Cause != 1 || first.Status == nil || first.Status.Code != "OK" || first.By != "script" || admin.By != "admin" || admin.ID != 3 || admin.Peer == nil || admin.Peer.ID != 1 {
		t.Errorf("journal entries: %+v / %+v", first, admin)
	}
	for _, bad := range []*adminpb.StreamJournalRequest{{Dir: "sideways"}, {Code: "NOPE"}, {Method: "[x"}} {
		err := e.client.Journal(ctx, bad, func(*adminpb.StreamJournalResponse) error { return nil })
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("Journal(%+v): %v, want INVALID_ARGUMENT", bad, err)
		}
	}

	info, err := e.client.Server(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Script != "serve.yaml" || info.Peers != 1 || info.ForwardCalls != 1 || info.ReverseCalls != 3 || !slices.Contains(info.Services, "gitaly.RefService") || info.Listen[0] != e.addr {
		t.Errorf("server: %+v", info)
	}
}

func TestAdminWatchAndFollow(t *testing.T) {
	ctx := testContext(t)
	e := start(t, "127.0.0.1:0")
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	changes := make(chan *adminpb.PeerChange, 10)
	watching := make(chan error, 1)
	snap := make(chan []*adminpb.Peer, 1)
	go func() {
		watching <- e.client.WatchPeers(wctx, func(p []*adminpb.Peer) error { snap <- p; return nil }, func(c *adminpb.PeerChange) error { changes <- c; return nil })
	}()
	if p := <-snap; len(p) != 0 {
		t.Fatalf("snapshot: %v", p)
	}
	lines := make(chan *adminpb.StreamJournalResponse, 10)
	following := make(chan error, 1)
	go func() {
		following <- e.client.Journal(wctx, &adminpb.StreamJournalRequest{Follow: true, NoBacklog: true}, func(l *adminpb.StreamJournalResponse) error { lines <- l; return nil })
	}()

	conn := e.peer(t)
	if c := <-changes; c.Kind != "joined" || c.Peer.Id != 1 {
		t.Errorf("first change: %+v", c)
	}
	if c := <-changes; c.Kind != "updated" || c.Peer.Discovery != "done" {
		t.Errorf("second change: %+v", c)
	}
	if _, err := e.client.CallPeer(ctx, &adminpb.CallPeerRequest{PeerId: 1, Method: "gitaly.RefTransaction/VoteTransaction"}); err != nil {
		t.Fatal(err)
	}
	select {
	case l := <-lines:
		if l.Id != 1 || !strings.Contains(l.Line, `"by":"admin"`) {
			t.Errorf("followed line: %+v", l)
		}
	case <-ctx.Done():
		t.Fatal("no journal line followed")
	}
	conn.Close()
	if c := <-changes; c.Kind != "left" || c.Peer.Id != 1 || c.Peer.ReverseCalls != 1 {
		t.Errorf("third change: %+v", c)
	}
	cancel()
	if err := <-watching; status.Code(err) != codes.Canceled && !errors.Is(err, context.Canceled) {
		t.Errorf("watch ended with %v", err)
	}
	<-following
}

func TestAdminOverUnixSocketIsReflectable(t *testing.T) {
	ctx := testContext(t)
	e := start(t, "unix:"+filepath.Join(t.TempDir(), "admin.sock"))
	if !strings.HasPrefix(e.adminAddr, "unix:") {
		t.Fatalf("admin address %s", e.adminAddr)
	}
	src := dynamic.NewSourceFromReflection(ctx, e.client.Conn(), nil)
	defer src.Close()
	names, err := src.ListServices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(names, protoreflect.FullName(ServiceName)) {
		t.Errorf("reflection lists %v, want %s", names, ServiceName)
	}
	d, err := dynamic.FindMethod(ctx, src, "bcctl.admin.v1.Admin/CallPeer")
	if err != nil {
		t.Fatal(err)
	}
	if d.Input().Fields().ByName("request_json") == nil {
		t.Errorf("reflected CallPeerRequest lacks request_json")
	}
	if _, err := e.client.Peers(ctx); err != nil {
		t.Errorf("Peers over a unix socket: %v", err)
	}
}

func TestAdminIsNotOnTheMainPort(t *testing.T) {
	ctx := testContext(t)
	e := start(t, "127.0.0.1:0")
	c, err := NewClient(e.addr) // serve's main port
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Peers(ctx)
	if err == nil || !strings.Contains(err.Error(), "is this the admin address of bcctl serve?") {
		t.Errorf("admin call on the main port: %v, want UNIMPLEMENTED", err)
	}
	_, err = c.CallPeer(ctx, &adminpb.CallPeerRequest{PeerId: 1, Method: "gitaly.RefTransaction/VoteTransaction"})
	if err == nil {
		t.Errorf("CallPeer through the main port succeeded")
	}
}

func TestClientUnreachable(t *testing.T) {
	ctx := testContext(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	c, err := NewClient(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Peers(ctx)
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("unreachable admin: %v", err)
	}
}

func TestCheckAddress(t *testing.T) {
	ctx := testContext(t)
	for _, tc := range []struct {
		addr string
		ok   bool
		want string
	}{
		{"127.0.0.1:9000", true, ""},
		{"127.0.0.2:9000", true, ""},
		{"[::1]:9000", true, ""},
		{"localhost:0", true, ""},
		{"unix:/tmp/admin.sock", true, ""},
		{"unix:///tmp/admin.sock", true, ""},
		{":9000", false, "every network interface"},
		{"0.0.0.0:9000", false, "every network interface"},
		{"[::]:9000", false, "every network interface"},
		{"10.1.2.3:9000", false, "10.1.2.3 is not a loopback address"},
		{"example.com:9000", false, `host "example.com" is not a loopback address`},
		{"127.0.0.1", false, "want 127.0.0.1:PORT"},
		{"unix:", false, "socket path is missing"},
	} {
		err := CheckAddress(ctx, tc.addr)
		if tc.ok != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("CheckAddress(%q) = %v, want ok=%v %q", tc.addr, err, tc.ok, tc.want)
		}
		if err != nil && tc.want != "want 127.0.0.1:PORT" && tc.want != "socket path is missing" && !errors.Is(err, ErrNotLocal) {
			t.Errorf("CheckAddress(%q) = %v does not wrap ErrNotLocal", tc.addr, err)
		}
	}
}

func emptyMsg(t *testing.T, name string) any {
	t.Helper()
	src := corpusSchema(t)
	d, err := src.FindSymbol(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return dynamicpb.NewMessage(d.(protoreflect.MessageDescriptor))
}
