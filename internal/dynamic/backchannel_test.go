package dynamic

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/listenmux"
)

// voteFlow is the Gitaly/Praefect vote played entirely with dynamic
// messages: the server answers gitaly.OperationService/UserCreateBranch by
// calling gitaly.RefTransaction/VoteTransaction on the caller's backchannel,
// with the transaction of its gitaly-reference-transaction metadata (with
// Invoke over the backchannel connection) and lists the caller's
// backchannel services by reflection over that same connection.
type voteFlow struct {
	src      Source
	registry *backchannel.Registry

	mu        sync.Mutex
	peerIDs   []uint64
	peerLists [][]protoreflect.FullName
}

func (v *voteFlow) respond(call Call) error {
	if MethodName(call.Method()) != "gitaly.OperationService/UserCreateBranch" {
		return status.Errorf(codes.Unimplemented, "%s", MethodName(call.Method()))
	}
	req, err := call.Recv()
	if err != nil {
		return err
	}
	branch := getBytes(req, "branch_name")
	p := call.Peer()
	v.mu.Lock()
	v.peerIDs = append(v.peerIDs, p.BackchannelID)
	v.mu.Unlock()
	out := call.Method().Output()
	if p.BackchannelID == 0 {
		return call.Send(mustMsg(out, fmt.Sprintf(`{"branch": {"name": %q, "targetCommit": {"id": "unvoted"}}}`, base64.StdEncoding.EncodeToString(branch))))
	}
	conn, err := v.registry.Backchannel(backchannel.ID(p.BackchannelID))
	if err != nil {
		return status.Errorf(codes.Internal, "backchannel: %v", err)
	}

	// What does the caller serve on its backchannel?
	peerSrc := NewSourceFromReflection(call.Context(), conn, nil)
	defer peerSrc.Close()
	services, err := peerSrc.ListServices(call.Context())
	if err != nil {
		return status.Errorf(codes.Internal, "reflect on the caller: %v", err)
	}
	v.mu.Lock()
	v.peerLists = append(v.peerLists, services)
	v.mu.Unlock()

	// The vote: a reverse call, described by the caller's own reflection.
	tx, err := transactionOf(call.Metadata())
	if err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	rec := &recorder{}
	hash := sha1.Sum(branch)
	vote := fmt.Sprintf(`{"transactionId": "%d", "referenceUpdatesHash": %q, "node": %q, "phase": "PREPARED_PHASE"}`,
		tx.ID, base64.StdEncoding.EncodeToString(hash[:]), tx.Node)
	if bytes.HasPrefix(branch, []byte("abort/")) {
		vote = fmt.Sprintf(`{"transactionId": "%d"}`, tx.ID)
	}
	err = InvokeRPC(call.Context(), peerSrc, conn, "gitaly.RefTransaction/VoteTransaction",
		nil, rec, NewJSONRequestParser(strings.NewReader(vote), peerSrc.Types()).Next)
	if err != nil {
		return status.Errorf(codes.Internal, "vote: %v", err)
	}
	if rec.status.Code() != codes.OK {
		return status.Errorf(codes.Aborted, "vote failed: %v", rec.status.Err())
	}
	state := toJSON(noT{}, rec.responses[0])
	if state != `{}` { // COMMIT is the zero value, so it is not printed
		return status.Errorf(codes.Aborted, "vote was %s", state)
	}
	return call.Send(mustMsg(out, fmt.Sprintf(`{"branch": {"name": %q, "targetCommit": {"id": "voted"}}}`, base64.StdEncoding.EncodeToString(branch))))
}

// transaction is what Praefect sends in gitaly-reference-transaction.
type transaction struct {
	ID      uint64 `json:"id"`
	Node    string `json:"node"`
	Primary bool   `json:"primary"`
}

// transactionOf decodes the transaction of a request's metadata.
func transactionOf(md metadata.MD) (transaction, error) {
	var tx transaction
	v := md.Get("gitaly-reference-transaction")
	if len(v) == 0 {
		return tx, errors.New("no gitaly-reference-transaction metadata")
	}
	js, err := base64.StdEncoding.DecodeString(v[0])
	if err != nil {
		return tx, fmt.Errorf("gitaly-reference-transaction: %w", err)
	}
	if err := json.Unmarshal(js, &tx); err != nil {
		return tx, fmt.Errorf("gitaly-reference-transaction: %w", err)
	}
	return tx, nil
}

// transactionMD is the metadata Praefect sends for transaction id on node.
func transactionMD(id uint64, node string) metadata.MD {
	js, _ := json.Marshal(transaction{ID: id, Node: node, Primary: true})
	return metadata.Pairs("gitaly-reference-transaction", base64.StdEncoding.EncodeToString(js))
}

// noT lets responders use toJSON (which wants a testing.TB only to fail).
type noT struct{ testing.TB }

func (noT) Helper()                   {}
func (noT) Fatalf(f string, a ...any) { panic(fmt.Sprintf(f, a...)) }

// startVoteServer is the upstream ("gitaly"): a listenmux with the
// backchannel handshaker in front of a dynamic server for the corpus.
func startVoteServer(t *testing.T) (string, *voteFlow) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	flow := &voteFlow{src: protosetSource(t), registry: backchannel.NewRegistry()}
	mux := listenmux.New(insecure.NewCredentials())
	mux.Register(backchannel.NewServerHandshaker(nil, flow.registry, nil))
	srv := grpc.NewServer(grpc.Creds(mux))
	if _, err := RegisterSource(testContext(t), srv, flow.src, ResponderFunc(flow.respond)); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return lis.Addr().String(), flow
}

// voterServerFactory is the caller's ("praefect") backchannel server: a
// dynamic server for gitaly.RefTransaction only, with reflection and health.
func voterServerFactory(t *testing.T, seen *[]calls.Peer, mu *sync.Mutex) backchannel.ServerFactory {
	src := protosetSource(t)
	d, err := src.FindSymbol(testContext(t), "gitaly.RefTransaction")
	if err != nil {
		t.Fatal(err)
	}
	services := []protoreflect.ServiceDescriptor{d.(protoreflect.ServiceDescriptor)}
	inner := corpusResponder()
	r := ResponderFunc(func(call Call) error {
		mu.Lock()
		*seen = append(*seen, call.Peer())
		mu.Unlock()
		return inner.Respond(call)
	})
	return func() backchannel.Server {
		s := grpc.NewServer()
		if err := RegisterServices(s, services, r); err != nil {
			panic(err) // a test set-up bug
		}
		RegisterReflection(s, services)
		RegisterHealth(s, services)
		return s
	}
}

func TestRoundTripOverBackchannel(t *testing.T) {
	addr, flow := startVoteServer(t)
	var reverseMu sync.Mutex
	var reverseSeen []calls.Peer
	hs := backchannel.NewClientHandshaker(nil, voterServerFactory(t, &reverseSeen, &reverseMu), backchannel.DefaultConfiguration())
	muxed, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(hs.ClientHandshake(insecure.NewCredentials())))
	if err != nil {
		t.Fatal(err)
	}
	defer muxed.Close()
	plain := dial(t, addr)

	eachSource(t, func(t *testing.T, src Source) {
		tests := []struct {
			name     string
			cc       *grpc.ClientConn
			request  string
			want     string
			wantCode codes.Code
			wantMsg  string
		}{
			{name: "multiplexed, vote COMMIT", cc: muxed, request: `{"branchName": "ZmVhdHVyZS94"}`, // feature/x
				want: `{"branch":{"name":"ZmVhdHVyZS94","targetCommit":{"id":"voted"}}}`},
			{name: "multiplexed, vote ABORT", cc: muxed, request: `{"branchName": "YWJvcnQveA=="}`, // abort/x
				wantCode: codes.Aborted, wantMsg: `vote was {"state":"ABORT"}`},
			{name: "plain client, no vote", cc: plain, request: `{"branchName": "ZmVhdHVyZS95"}`, // feature/y
				want: `{"branch":{"name":"ZmVhdHVyZS95","targetCommit":{"id":"unvoted"}}}`},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				rec := &recorder{}
				err := InvokeRPC(testContext(t), src, tc.cc, "gitaly.OperationService/UserCreateBranch", transactionMD(17, "gitaly-1"),
					rec, supply(src, tc.request))
				if err != nil {
					t.Fatal(err)
				}
				if rec.status.Code() != tc.wantCode || (tc.wantMsg != "" && rec.status.Message() != tc.wantMsg) {
					t.Fatalf("status %v, want %v %q", rec.status.Err(), tc.wantCode, tc.wantMsg)
				}
				if tc.want != "" {
					if len(rec.responses) != 1 || toJSON(t, rec.responses[0]) != tc.want {
						t.Errorf("responses %v, want %s", responsesJSON(t, rec), tc.want)
					}
				}
			})
		}
	})

	flow.mu.Lock()
	defer flow.mu.Unlock()
	var muxedIDs, plainIDs int
	for _, id := range flow.peerIDs {
		if id == 0 {
			plainIDs++
		} else {
			muxedIDs++
		}
	}
	if muxedIDs != 6 || plainIDs != 3 {
		t.Errorf("peer IDs seen by the server = %v, want 6 non-zero and 3 zero", flow.peerIDs)
	}
	wantServices := "gitaly.RefTransaction grpc.health.v1.Health grpc.reflection.v1.ServerReflection grpc.reflection.v1alpha.ServerReflection"
	for _, list := range flow.peerLists {
		var names []string
		for _, n := range list {
			names = append(names, string(n))
		}
		if strings.Join(names, " ") != wantServices {
			t.Errorf("caller's backchannel services by reflection = %v, want %s", names, wantServices)
		}
	}
	reverseMu.Lock()
	defer reverseMu.Unlock()
	if len(reverseSeen) != 6 {
		t.Errorf("the caller answered %d votes, want 6", len(reverseSeen))
	}
	for _, p := range reverseSeen {
		if p.BackchannelID != 0 || p.Addr == "" {
			t.Errorf("a reverse call's calls.Peer = %+v, want an address and no backchannel ID", p)
		}
	}
}

// Every call kind also works in the reverse direction: the server invokes
// the caller's dynamic server through the backchannel.
func TestReverseCallsOfEveryKind(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	registry := backchannel.NewRegistry()
	mux := listenmux.New(insecure.NewCredentials())
	mux.Register(backchannel.NewServerHandshaker(nil, registry, nil))
	src := protosetSource(t)
	type result struct {
		method string
		rec    *recorder
		err    error
	}
	results := make(chan []result, 1)
	// The upstream answers acme.Users/Get by calling every acme.Users
	// method on its caller and reporting what came back.
	upstream := ResponderFunc(func(call Call) error {
		if _, err := call.Recv(); err != nil {
			return err
		}
		id, err := backchannel.GetPeerID(call.Context())
		if err != nil {
			return err
		}
		conn, err := registry.Backchannel(id)
		if err != nil {
			return err
		}
		var got []result
		for _, c := range []struct{ method, reqs string }{
			{"acme.Users/Get", `{"id": "r1"}`},
			{"acme.Users/List", `{"limit": 2}`},
			{"acme.Users/Import", `{"id": "a"} {"id": "a"} {"id": "b"}`},
			{"acme.Users/Chat", `{"text": "x"} {"text": "y"}`},
		} {
			rec := &recorder{}
			err := InvokeRPC(call.Context(), src, conn, c.method, nil, rec, NewJSONRequestParser(strings.NewReader(c.reqs), src.Types()).Next)
			got = append(got, result{c.method, rec, err})
		}
		results <- got
		return call.Send(mustMsg(call.Method().Output(), `{"id": "done"}`))
	})
	srv := grpc.NewServer(grpc.Creds(mux))
	if _, err := RegisterSource(testContext(t), srv, src, upstream); err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()

	services, err := Services(testContext(t), src)
	if err != nil {
		t.Fatal(err)
	}
	hs := backchannel.NewClientHandshaker(nil, func() backchannel.Server {
		s := grpc.NewServer()
		if err := RegisterServices(s, services, corpusResponder()); err != nil {
			panic(err)
		}
		return s
	}, backchannel.DefaultConfiguration())
	cc, err := grpc.NewClient("passthrough:///"+lis.Addr().String(), grpc.WithTransportCredentials(hs.ClientHandshake(insecure.NewCredentials())))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	rec := &recorder{}
	if err := InvokeRPC(testContext(t), src, cc, "acme.Users/Get", nil, rec, nil); err != nil || rec.status.Code() != codes.OK {
		t.Fatalf("forward call: %v %v", err, rec.status.Err())
	}
	want := map[string]string{
		"acme.Users/Get":    `{"id":"r1","name":"user r1"}`,
		"acme.Users/List":   `{"id":"u1"} {"id":"u2"}`,
		"acme.Users/Import": `{"imported":2,"skippedIds":["a"]}`,
		"acme.Users/Chat":   `{"from":"server","text":"echo: x"} {"from":"server","text":"echo: y"}`,
	}
	for _, r := range <-results {
		if r.err != nil || r.rec.status.Code() != codes.OK {
			t.Errorf("reverse %s: %v %v", r.method, r.err, r.rec.status.Err())
			continue
		}
		if got := strings.Join(responsesJSON(t, r.rec), " "); got != want[r.method] {
			t.Errorf("reverse %s = %s, want %s", r.method, got, want[r.method])
		}
	}
}
