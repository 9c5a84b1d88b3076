package main

// Servers for the tests: a Gitaly-like server that speaks the backchannel
// protocol and calls back into its callers, and a plain gRPC server that
// does not. Both serve the corpus of internal/corpus with reflection and
// health. Testscripts start them with the `bcserver` command (see
// main_test.go); Go tests call startTestServer.

import (
	"context"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/corpus"
	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/listenmux"
)

// testServerOptions configure a test server.
type testServerOptions struct {
	// Plain serves without listenmux: a multiplexing client's magic bytes
	// then break the HTTP/2 preface, as with any server that knows nothing
	// of backchannels.
	Plain bool
	// TLSDir, when set, serves TLS with the certificates of writeTestCerts
	// in that directory; MTLS also requires a client certificate.
	TLSDir string
	MTLS   bool
	// Unix, when set, listens on this unix socket instead of 127.0.0.1:0.
	Unix string
	// NoReflection leaves reflection out (for --proto/--protoset tests).
	NoReflection bool
	// StallReflection serves a reflection service that never answers, so
	// that a deadline passes while a client resolves its schema.
	StallReflection bool
}

// testServer is a running test server.
type testServer struct {
	Addr     string // host:port, or the socket path
	Registry *backchannel.Registry
	srv      *grpc.Server
	src      *dynamic.FileSource
	done     chan struct{}
	stopOnce sync.Once

	// releases lets the reverse call of a UserDeleteBranch go (see
	// deleteBranch): one value per call.
	releases chan struct{}

	mu      sync.Mutex
	reverse []string      // results of the reverse calls it made
	changed chan struct{} // closed and replaced when reverse grows
}

// corpusSource returns the corpus schema.
func corpusSource() *dynamic.FileSource {
	src, err := dynamic.NewSourceFromProtosetBytes(corpus.Protoset)
	if err != nil {
		panic(err)
	}
	return src
}

// startTestServer starts a server; Stop it when done.
func startTestServer(opts testServerOptions) (*testServer, error) {
	src := corpusSource()
	ts := &testServer{Registry: backchannel.NewRegistry(), src: src, done: make(chan struct{}), changed: make(chan struct{}), releases: make(chan struct{})}

	var creds credentials.TransportCredentials = insecure.NewCredentials()
	if opts.TLSDir != "" {
		cfg, err := testServerTLS(opts.TLSDir, opts.MTLS)
		if err != nil {
			return nil, err
		}
		creds = credentials.NewTLS(cfg)
	}
	logger := slog.New(slog.DiscardHandler)
	var sopts []grpc.ServerOption
	if opts.Plain {
		sopts = append(sopts, grpc.Creds(creds))
	} else {
		mux := listenmux.New(creds)
		mux.Register(backchannel.NewServerHandshaker(logger, ts.Registry, nil))
		sopts = append(sopts, grpc.Creds(mux))
	}
	ts.srv = grpc.NewServer(sopts...)

	ctx := context.Background()
	var services []protoreflect.ServiceDescriptor
	for _, name := range []string{"acme.Users", "gitaly.OperationService", "gitaly.RefService"} {
		d, err := src.FindSymbol(ctx, name)
		if err != nil {
			return nil, err
		}
		services = append(services, d.(protoreflect.ServiceDescriptor))
	}
	if err := dynamic.RegisterServices(ts.srv, services, dynamic.ResponderFunc(ts.respond), dynamic.WithLogger(logger)); err != nil {
		return nil, err
	}
	switch {
	case opts.StallReflection:
		reflectionv1.RegisterServerReflectionServer(ts.srv, stalledReflection{})
	case !opts.NoReflection:
		dynamic.RegisterReflection(ts.srv, services, src.Files()...)
	}
	dynamic.RegisterHealth(ts.srv, services)

	var lis net.Listener
	var err error
	if opts.Unix != "" {
		lis, err = net.Listen("unix", opts.Unix)
		ts.Addr = opts.Unix
	} else {
		lis, err = net.Listen("tcp", "127.0.0.1:0")
		if err == nil {
			ts.Addr = lis.Addr().String()
		}
	}
	if err != nil {
		return nil, err
	}
	go func() {
		defer close(ts.done)
		_ = ts.srv.Serve(lis)
	}()
	return ts, nil
}

// Stop stops the server and waits for it. It may be called more than once.
func (ts *testServer) Stop() {
	ts.stopOnce.Do(func() {
		ts.srv.Stop()
		<-ts.done
	})
}

func (ts *testServer) message(name string, json string) proto.Message {
	d, err := ts.src.FindSymbol(context.Background(), name)
	if err != nil {
		panic(err)
	}
	msg := dynamicpb.NewMessage(d.(protoreflect.MessageDescriptor))
	if json != "" {
		if err := dynamic.ParseJSON([]byte(json), msg, ts.src.Types()); err != nil {
			panic(fmt.Sprintf("%s %s: %v", name, json, err))
		}
	}
	return msg
}

func field(msg proto.Message, name string) protoreflect.Value {
	m := msg.ProtoReflect()
	return m.Get(m.Descriptor().Fields().ByName(protoreflect.Name(name)))
}

// respond answers every method of the test server.
func (ts *testServer) respond(call dynamic.Call) error {
	switch dynamic.MethodName(call.Method()) {
	case "acme.Users/Get":
		req, err := call.Recv()
		if err != nil {
			return err
		}
		id := field(req, "id").String()
		switch id {
		case "":
			return status.Error(codes.InvalidArgument, "id is required")
		case "404", "missing":
			st, _ := status.New(codes.NotFound, fmt.Sprintf("user %q not found", id)).WithDetails(&errdetails.ErrorInfo{
				Reason: "USER_NOT_FOUND", Domain: "acme.example", Metadata: map[string]string{"id": id},
			})
			return st.Err()
		case "deadline":
			return status.Error(codes.DeadlineExceeded, "the server gave up waiting")
		case "slow":
			select {
			case <-time.After(30 * time.Second):
			case <-call.Context().Done():
				return call.Context().Err()
			}
		}
		md := call.Metadata()
		_ = call.SetHeader(metadata.Pairs("x-served-by", "testserver"))
		call.SetTrailer(metadata.Pairs("x-user-id", id))
		name := "user " + id
		if v := md.Get("x-name"); len(v) > 0 {
			name = v[0]
		}
		return call.Send(ts.message("acme.User", fmt.Sprintf(`{"id": %q, "name": %q, "role": "ROLE_READER"}`, id, name)))
	case "acme.Users/List":
		req, err := call.Recv()
		if err != nil {
			return err
		}
		n := int(field(req, "limit").Uint())
		if n == 0 {
			n = 3
		}
		for i := 1; i <= n; i++ {
			if err := call.Send(ts.message("acme.User", fmt.Sprintf(`{"id": "%d", "name": "user %d"}`, i, i))); err != nil {
				return err
			}
		}
		return nil
	case "acme.Users/Import":
		var ids []string
		for {
			req, err := call.Recv()
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
			ids = append(ids, field(req, "id").String())
		}
		return call.Send(ts.message("acme.ImportSummary", fmt.Sprintf(`{"imported": %d}`, len(ids))))
	case "acme.Users/Chat":
		// Echo each message as it arrives: the client sees an answer
		// before it sends its next message (full duplex).
		for {
			req, err := call.Recv()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			text := field(req, "text").String()
			if err := call.Send(ts.message("acme.ChatMessage", fmt.Sprintf(`{"from": "server", "text": %q}`, "echo: "+text))); err != nil {
				return err
			}
		}
	case "gitaly.OperationService/UserCreateBranch":
		return ts.createBranch(call)
	case "gitaly.OperationService/UserDeleteBranch":
		return ts.deleteBranch(call)
	case "gitaly.RefService/FindAllBranches":
		if _, err := call.Recv(); err != nil {
			return err
		}
		return call.Send(ts.message("gitaly.FindAllBranchesResponse", `{"branches": [{"name": "cmVmcy9oZWFkcy9tYWlu", "target": {"id": "abc"}}]}`))
	}
	return status.Errorf(codes.Unimplemented, "test server: %s", dynamic.MethodName(call.Method()))
}

// transaction is what Praefect sends in the gitaly-reference-transaction
// request metadata: the standard base64 of this JSON.
type transaction struct {
	ID      uint64 `json:"id"`
	Node    string `json:"node"`
	Primary bool   `json:"primary"`
}

// transactionOf decodes a request's transaction; without one it is
// transaction 1 of node gitaly-1 (so that every call exercises a vote).
func transactionOf(md metadata.MD) (transaction, error) {
	txn := transaction{ID: 1, Node: "gitaly-1", Primary: true}
	v := md.Get("gitaly-reference-transaction")
	if len(v) == 0 {
		return txn, nil
	}
	js, err := base64.StdEncoding.DecodeString(v[0])
	if err == nil {
		err = json.Unmarshal(js, &txn)
	}
	if err != nil {
		return txn, status.Errorf(codes.InvalidArgument, "gitaly-reference-transaction %q: %v", v[0], err)
	}
	return txn, nil
}

// createBranch does what Gitaly does: it asks the caller to vote through
// the caller's backchannel, with the id and node of the request's
// transaction and the SHA-1 of the branch name, twice: when the reference
// is locked (PREPARED_PHASE) and when it is updated (COMMITTED_PHASE). A
// vote that fails, or is not COMMIT, ends the call with ABORTED (and the
// second vote is not made).
func (ts *testServer) createBranch(call dynamic.Call) error {
	req, err := call.Recv()
	if err != nil {
		return err
	}
	branch := field(req, "branch_name").Bytes()
	conn, err := ts.callerBackchannel(call.Context())
	if err != nil {
		return err
	}
	tx, err := transactionOf(call.Metadata())
	if err != nil {
		return err
	}
	for _, phase := range []string{"PREPARED_PHASE", "COMMITTED_PHASE"} {
		if err := ts.vote(call.Context(), conn, tx, sha1.Sum(branch), phase); err != nil {
			return err
		}
	}
	start := string(field(req, "start_point").Bytes())
	if start == "" {
		start = "HEAD"
	}
	return call.Send(ts.message("gitaly.UserCreateBranchResponse", fmt.Sprintf(
		`{"branch": {"name": %q, "target_commit": {"id": %q}}}`, base64.StdEncoding.EncodeToString(branch), start)))
}

// vote makes one vote of transaction tx on the caller's backchannel conn,
// records its outcome ("vote COMMIT") and fails with ABORTED unless it is
// COMMIT.
func (ts *testServer) vote(ctx context.Context, conn *grpc.ClientConn, tx transaction, hash [sha1.Size]byte, phase string) error {
	req := ts.message("gitaly.VoteTransactionRequest", fmt.Sprintf(
		`{"transaction_id": "%d", "node": %q, "phase": %q, "reference_updates_hash": %q}`,
		tx.ID, tx.Node, phase, base64.StdEncoding.EncodeToString(hash[:])))
	reply := ts.message("gitaly.VoteTransactionResponse", "")
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := conn.Invoke(ctx, "/gitaly.RefTransaction/VoteTransaction", req, reply); err != nil {
		st := status.Convert(err)
		ts.record("vote failed: " + st.Code().String())
		return status.Errorf(codes.Aborted, "vote on transaction %d failed: %s: %s", tx.ID, st.Code(), st.Message())
	}
	state := field(reply, "state").Enum()
	stateName := string(reply.ProtoReflect().Descriptor().Fields().ByName("state").Enum().Values().ByNumber(state).Name())
	ts.record("vote " + stateName)
	if stateName != "COMMIT" {
		return status.Errorf(codes.Aborted, "transaction %d: vote was %s", tx.ID, stateName)
	}
	return nil
}

// deleteBranch answers at once and then, once released (release), tells
// the caller to stop the transaction through its backchannel: a reverse
// call that arrives after the forward call is done, when the test
// releases it after it has seen the caller finish the forward call (its
// journal entry, say).
func (ts *testServer) deleteBranch(call dynamic.Call) error {
	if _, err := call.Recv(); err != nil {
		return err
	}
	conn, err := ts.callerBackchannel(call.Context())
	if err != nil {
		return err
	}
	go func() {
		select {
		case <-ts.releases:
		case <-ts.done: // stopped before the test released the call
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req := ts.message("gitaly.StopTransactionRequest", `{"transaction_id": "9"}`)
		err := conn.Invoke(ctx, "/gitaly.RefTransaction/StopTransaction", req, ts.message("gitaly.StopTransactionResponse", ""))
		ts.record("stop: " + status.Code(err).String())
	}()
	return call.Send(ts.message("gitaly.UserDeleteBranchResponse", ""))
}

// release lets the reverse call of the UserDeleteBranch that waits for it go.
func (ts *testServer) release(timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case ts.releases <- struct{}{}:
		return nil
	case <-t.C:
		return fmt.Errorf("no UserDeleteBranch waited for its reverse call within %s", timeout)
	}
}

func (ts *testServer) callerBackchannel(ctx context.Context) (*grpc.ClientConn, error) {
	id, err := backchannel.GetPeerID(ctx)
	if err != nil {
		return nil, status.Error(codes.FailedPrecondition, "this method votes through the caller's backchannel: connect with multiplexing")
	}
	conn, err := ts.Registry.Backchannel(id)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "backchannel of peer %d: %v", id, err)
	}
	return conn, nil
}

func (ts *testServer) record(s string) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.reverse = append(ts.reverse, s)
	close(ts.changed)
	ts.changed = make(chan struct{})
}

// reverseLog waits until the server has made n reverse calls (or timeout
// passed) and returns what they got.
func (ts *testServer) reverseLog(n int, timeout time.Duration) []string {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		ts.mu.Lock()
		log, ch := append([]string(nil), ts.reverse...), ts.changed
		ts.mu.Unlock()
		if len(log) >= n {
			return log
		}
		select {
		case <-ch:
		case <-t.C:
			return log
		}
	}
}

// waitPeers returns the connected peers, waiting up to timeout for one.
func (ts *testServer) waitPeers(ctx context.Context, timeout time.Duration) ([]backchannel.PeerInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	snapshot, events := ts.Registry.Watch(ctx)
	for len(snapshot) == 0 {
		select {
		case ev, ok := <-events:
			if !ok {
				return nil, fmt.Errorf("no peer connected within %s", timeout)
			}
			if ev.Kind == backchannel.PeerJoined {
				snapshot = append(snapshot, ev.Peer)
			}
		case <-ctx.Done():
			return nil, fmt.Errorf("no peer connected within %s", timeout)
		}
	}
	return snapshot, nil
}

// waitPeerCount waits (up to timeout) until exactly n peers are connected.
func (ts *testServer) waitPeerCount(ctx context.Context, n int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	snapshot, events := ts.Registry.Watch(ctx)
	live := len(snapshot)
	for live != n {
		select {
		case ev, ok := <-events:
			if !ok {
				return fmt.Errorf("%d peers connected after %s, want %d", live, timeout, n)
			}
			if ev.Kind == backchannel.PeerJoined {
				live++
			} else {
				live--
			}
		case <-ctx.Done():
			return fmt.Errorf("%d peers connected after %s, want %d", live, timeout, n)
		}
	}
	return nil
}

// listPeers lists the services each connected peer hosts, by reflection
// over its backchannel.
func (ts *testServer) listPeers(ctx context.Context, timeout time.Duration) ([]string, error) {
	peers, err := ts.waitPeers(ctx, timeout)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range peers {
		conn, err := ts.Registry.Backchannel(p.ID)
		if err != nil {
			out = append(out, fmt.Sprintf("peer %d: %v", p.ID, err))
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, timeout)
		src := dynamic.NewSourceFromReflection(rctx, conn, nil)
		names, err := src.ListServices(rctx)
		src.Close()
		cancel()
		if err != nil {
			out = append(out, fmt.Sprintf("peer %d: %v", p.ID, err))
			continue
		}
		for _, n := range names {
			out = append(out, fmt.Sprintf("peer %d: %s", p.ID, n))
		}
	}
	return out, nil
}

// callPeers invokes method with the JSON request on the backchannel of
// every connected peer, after waiting (up to timeout) for at least one
// peer, and returns each peer's answer as a line of text.
func (ts *testServer) callPeers(ctx context.Context, method, reqJSON string, timeout time.Duration) ([]string, error) {
	snapshot, err := ts.waitPeers(ctx, timeout)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	md, err := dynamic.FindMethod(ctx, ts.src, method)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range snapshot {
		conn, err := ts.Registry.Backchannel(p.ID)
		if err != nil {
			out = append(out, fmt.Sprintf("peer %d: %v", p.ID, err))
			continue
		}
		req := dynamicpb.NewMessage(md.Input())
		if err := dynamic.ParseJSON([]byte(reqJSON), req, ts.src.Types()); err != nil {
			return nil, err
		}
		resp := dynamicpb.NewMessage(md.Output())
		err = conn.Invoke(ctx, dynamic.FullMethod(md), req, resp)
		if err != nil {
			st := status.Convert(err)
			out = append(out, fmt.Sprintf("peer %d: %s: %s", p.ID, calls.CodeName(st.Code()), st.Message()))
			continue
		}
		f, _ := dynamic.NewFormatter(dynamic.FormatJSON, ts.src.Types(), dynamic.FormatOptions{Compact: true})
		text, _ := f(resp)
		out = append(out, fmt.Sprintf("peer %d: OK %s", p.ID, text))
	}
	return out, nil
}

func testServerTLS(dir string, mtls bool) (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem"))
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	if mtls {
		pem, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("ca.pem: no certificate")
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// stalledReflection is a reflection service that answers nothing until
// the caller gives up.
type stalledReflection struct {
	reflectionv1.UnimplementedServerReflectionServer
}

func (stalledReflection) ServerReflectionInfo(stream reflectionv1.ServerReflection_ServerReflectionInfoServer) error {
	<-stream.Context().Done()
	return stream.Context().Err()
}
