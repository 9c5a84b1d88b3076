// Package tuitest starts the servers the TUI's tests talk to: a Gitaly-like
// upstream on 127.0.0.1 (listenmux with the backchannel handshaker in front
// of a dynamic server answered by a script, whose call steps reach the
// caller's backchannel) and clients that host a dynamic.Responder on their
// backchannel, all over the schema corpus of internal/corpus.
package tuitest

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/corpus"
	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/script"
	"github.com/bcctl/bcctl/internal/testnet"
	"github.com/bcctl/bcctl/listenmux"
)

// Corpus returns the schema corpus (packages gitaly and acme).
func Corpus(t testing.TB) *dynamic.FileSource {
	t.Helper()
	src, err := dynamic.NewSourceFromProtosetBytes(corpus.Protoset)
	if err != nil {
		t.Fatalf("corpus: %v", err)
	}
	return src
}

// Context returns a context that is cancelled when the test ends, and
// after a minute at most.
func Context(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// Method returns the corpus method name ("pkg.Svc/Method").
func Method(t testing.TB, name string) protoreflect.MethodDescriptor {
	t.Helper()
	md, err := dynamic.FindMethod(context.Background(), Corpus(t), name)
	if err != nil {
		t.Fatal(err)
	}
	return md
}

// UpstreamScript is the Gitaly-like upstream: UserCreateBranch asks the caller
// to vote through its backchannel and creates the branch only on COMMIT;
// acme.Users answers Get, streams List, echoes each Chat message, counts
// names the first and last user of an Import once the caller has sent them
// all, and answers
// Update only after an hour (a call to give a deadline to).
const UpstreamScript = `
rules:
  - name: vote-before-branch
    match: {method: gitaly.OperationService/UserCreateBranch}
    do:
      - call:
          method: gitaly.RefTransaction/VoteTransaction
          with:
            transaction_id: "${meta.gitaly-reference-transaction | b64dec | fromjson.id}"
            node: "${meta.gitaly-reference-transaction | b64dec | fromjson.node}"
            reference_updates_hash: "${req.branch_name | sha1}"
            phase: PREPARED_PHASE
          metadata: {x-request-id: "42"}
          timeout: 60s
          expect: {code: OK, reply: {state: COMMIT}}
          as: vote
          else: {code: ABORTED, message: "vote ${vote.code} ${vote.reply.state}: ${vote.message}"}
      - reply: {branch: {name: "${req.branch_name}", target_commit: {id: "${req.start_point}"}}}
  - name: get-user
    match: {method: acme.Users/Get}
    headers: {x-served-by: upstream}
    trailers: {x-trailer: done}
    reply: {id: "${req.id}", name: "user ${req.id}"}
  - name: list-users
    match: {method: acme.Users/List}
    stream:
      - {id: "1", name: "ada"}
      - {id: "2", name: "grace"}
      - {id: "3", name: "linus"}
  - name: chat
    match: {method: acme.Users/Chat}
    each: [{send: {from: upstream, text: "echo ${req.text}"}}]
  - name: import
    match: {method: acme.Users/Import}
    end: [{reply: {skipped_ids: ["${reqs.0.id}", "${req.id}"]}}]
  - name: slow-update
    match: {method: acme.Users/Update}
    delay: 1h
    reply: {}
`

// Upstream is a running Gitaly-like server.
type Upstream struct {
	// Addr is its 127.0.0.1 address.
	Addr string
	// Registry holds its multiplexed peers.
	Registry *backchannel.Registry
	// Engine answers its forward calls.
	Engine *script.Engine
	// Source is its schema.
	Source *dynamic.FileSource

	lis *testnet.CrashListener
}

// Crash cuts every connection the upstream accepted, as a crash would:
// no goodbye, no stream reset.
func (u *Upstream) Crash() { u.lis.Crash() }

// StartUpstream starts an upstream answered by scriptText (UpstreamScript
// when empty) with observer told of every call (nil for none). It stops
// when the test ends.
func StartUpstream(t testing.TB, scriptText string, observer calls.Observer) *Upstream {
	t.Helper()
	if scriptText == "" {
		scriptText = UpstreamScript
	}
	src := Corpus(t)
	s, err := script.Parse(context.Background(), "upstream.yaml", []byte(scriptText), script.Config{Upstream: src})
	if err != nil {
		t.Fatalf("upstream script: %v", err)
	}
	u := &Upstream{Registry: backchannel.NewRegistry(), Source: src}
	u.Engine = script.NewEngine(s, script.Upstream, script.Options{
		Caller:   script.CallerFunc(u.targets),
		Observer: observer,
	})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u.Addr = lis.Addr().String()
	u.lis = testnet.NewCrashListener(lis)
	mux := listenmux.New(insecure.NewCredentials())
	mux.Register(backchannel.NewServerHandshaker(nil, u.Registry, nil))
	srv := grpc.NewServer(grpc.Creds(mux))
	if _, err := dynamic.RegisterSource(context.Background(), srv, src, u.Engine); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = srv.Serve(u.lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		wg.Wait()
	})
	return u
}

// targets reaches the backchannel of the peer being answered (or of peer
// to, by ID, or every peer for "all").
func (u *Upstream) targets(_ context.Context, from calls.Peer, to string) ([]script.Target, error) {
	var ids []backchannel.ID
	switch to {
	case "":
		ids = []backchannel.ID{backchannel.ID(from.BackchannelID)}
	case "all":
		for _, p := range u.Registry.Peers() {
			ids = append(ids, p.ID)
		}
	default:
		id, err := strconv.ParseUint(to, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("peer %q: %w", to, err)
		}
		ids = []backchannel.ID{backchannel.ID(id)}
	}
	var out []script.Target
	for _, id := range ids {
		cc, err := u.Registry.Backchannel(id)
		if err != nil {
			return nil, err
		}
		addr := ""
		if p, ok := u.Registry.Peer(id); ok && p.RemoteAddr != nil {
			addr = p.RemoteAddr.String()
		}
		out = append(out, script.Target{Peer: calls.Peer{BackchannelID: uint64(id), Addr: addr}, Conn: cc})
	}
	return out, nil
}

// HostedServices are the services a client hosts on its backchannel in
// these tests: gitaly.RefTransaction and acme.Users.
func HostedServices(t testing.TB) []protoreflect.ServiceDescriptor {
	t.Helper()
	src := Corpus(t)
	var out []protoreflect.ServiceDescriptor
	for _, name := range []string{"gitaly.RefTransaction", "acme.Users"} {
		d, err := src.FindSymbol(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, d.(protoreflect.ServiceDescriptor))
	}
	return out
}

// Dial connects to addr with the backchannel handshake and hosts r on the
// backchannel for HostedServices. The connection is ready when Dial
// returns (the peer is in the upstream's registry) and closes when the
// test ends.
func Dial(t testing.TB, addr string, r dynamic.Responder) *grpc.ClientConn {
	t.Helper()
	cc, _ := DialWatched(t, addr, r)
	return cc
}

// DialWatched is Dial, and also returns a function that reports whether
// the multiplexed session has ended (what host.Conn's BackchannelClosed
// reports for bcctl's own connections).
func DialWatched(t testing.TB, addr string, r dynamic.Responder) (*grpc.ClientConn, func() bool) {
	t.Helper()
	services := HostedServices(t)
	var mu sync.Mutex
	var session interface{ IsClosed() bool }
	factory := func() backchannel.Server {
		s := grpc.NewServer()
		if err := dynamic.RegisterServices(s, services, r); err != nil {
			panic(err) // a test set-up bug
		}
		dynamic.RegisterReflection(s, services)
		return watchedServer{Server: s, seen: func(lis net.Listener) {
			if c, ok := lis.(interface{ IsClosed() bool }); ok {
				mu.Lock()
				session = c
				mu.Unlock()
			}
		}}
	}
	closed := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return session != nil && session.IsClosed()
	}
	hs := backchannel.NewClientHandshaker(nil, factory, backchannel.DefaultConfiguration())
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(hs.ClientHandshake(insecure.NewCredentials())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	cc.Connect()
	ctx := Context(t)
	for s := cc.GetState(); s != connectivity.Ready; s = cc.GetState() {
		if !cc.WaitForStateChange(ctx, s) {
			t.Fatalf("dial %s: %v", addr, ctx.Err())
		}
	}
	return cc, closed
}

// watchedServer tells seen which listener (the yamux session) it serves.
type watchedServer struct {
	*grpc.Server
	seen func(net.Listener)
}

func (w watchedServer) Serve(lis net.Listener) error {
	w.seen(lis)
	return w.Server.Serve(lis)
}

// DownstreamEngine loads scriptText as the script of a client (its
// backchannel rules answer reverse calls).
func DownstreamEngine(t testing.TB, scriptText string, observer calls.Observer) *script.Engine {
	t.Helper()
	src := Corpus(t)
	s, err := script.Parse(context.Background(), "answer.yaml", []byte(scriptText), script.Config{Upstream: src})
	if err != nil {
		t.Fatalf("answer script: %v", err)
	}
	return script.NewEngine(s, script.Downstream, script.Options{Observer: observer})
}
