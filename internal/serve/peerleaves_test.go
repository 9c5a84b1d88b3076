package serve

import (
	"context"
	"io"
	"net"
	"testing"

	"github.com/hashicorp/yamux"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/bcctl/bcctl/internal/dynamic"
)

// halfPeer is a multiplexed peer whose forward connection can end while its
// multiplexed session (and the backchannel server on it) stays: serve then
// drops the peer while its reverse calls are still in flight, the order in
// which a peer's leaving is seen that used to end them CANCELLED.
type halfPeer struct {
	forward *grpc.ClientConn
	session *yamux.Session
	server  *grpc.Server
	served  chan struct{}
}

func dialHalfPeer(t *testing.T, addr string, r dynamic.Responder) *halfPeer {
	t.Helper()
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	// The backchannel handshake: the magic bytes, then a yamux client
	// session whose first stream carries the forward connection.
	if _, err := io.WriteString(raw, "backchannel"); err != nil {
		t.Fatal(err)
	}
	cfg := yamux.DefaultConfig()
	cfg.LogOutput = io.Discard
	session, err := yamux.Client(raw, cfg)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := corpusSchema(t).FindSymbol(context.Background(), "gitaly.RefTransaction")
	if err != nil {
		t.Fatal(err)
	}
	p := &halfPeer{session: session, server: grpc.NewServer(), served: make(chan struct{})}
	if err := dynamic.RegisterServices(p.server, []protoreflect.ServiceDescriptor{tx.(protoreflect.ServiceDescriptor)}, r); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.served)
		_ = p.server.Serve(session)
	}()
	p.forward, err = grpc.NewClient("passthrough:///peer",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(context.Context, string) (net.Conn, error) { return session.Open() }))
	if err != nil {
		t.Fatal(err)
	}
	p.forward.Connect()
	t.Cleanup(func() {
		p.forward.Close()
		p.server.Stop()
		session.Close()
		<-p.served
	})
	return p
}

// TestReverseCallEndsUnavailableWhenThePeerLeaves: a reverse call in flight
// when its peer leaves ends UNAVAILABLE, as docs/serve.md says, whichever
// way serve learns of the leaving, never CANCELLED as if serve had given up.
func TestReverseCallEndsUnavailableWhenThePeerLeaves(t *testing.T) {
	ctx := testContext(t)
	srv, addr, _ := startServe(t, voteScript)
	voter := blockingVoter{arrived: make(chan struct{}, 1)}
	p := dialHalfPeer(t, addr, voter)
	peer := waitPeers(t, ctx, srv, 1)[0]
	type result struct {
		ev  *Event
		err error
	}
	done := make(chan result, 1)
	go func() {
		ev, err := srv.CallPeer(ctx, PeerCall{Peer: peer.ID, Method: "gitaly.RefTransaction/VoteTransaction"})
		done <- result{ev, err}
	}()
	select {
	case <-voter.arrived:
	case <-ctx.Done():
		t.Fatal("the vote never reached the peer")
	}
	p.forward.Close() // serve drops the peer; its session is still up
	r := <-done
	if r.err != nil {
		t.Fatalf("CallPeer: %v", r.err)
	}
	if got := r.ev.Call.Status; got.Code() != codes.Unavailable {
		t.Errorf("the reverse call ended %s %q, want UNAVAILABLE", got.Code(), got.Message())
	}
}
