package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/dynamic"
)

// blockingVoter answers VoteTransaction only when the call's context ends;
// it reports each vote that arrives on arrived.
type blockingVoter struct{ arrived chan struct{} }

func (v blockingVoter) Respond(call dynamic.Call) error {
	if _, err := call.Recv(); err != nil {
		return err
	}
	v.arrived <- struct{}{}
	<-call.Context().Done()
	return call.Context().Err()
}

// waitEvent waits for a journal event that match selects.
func waitEvent(t *testing.T, ctx context.Context, srv *Server, match func(*Event) bool) *Event {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sub := srv.Subscribe(ctx, SubscribeOptions{Backlog: true, Follow: true})
	for ev := range sub.C {
		if match(ev) {
			return ev
		}
	}
	t.Fatalf("event never came: %v", ctx.Err())
	return nil
}

func TestPeerDisconnectsMidCall(t *testing.T) {
	ctx := testContext(t)
	srv, addr, journal := startServe(t, voteScript)
	voter := blockingVoter{arrived: make(chan struct{}, 1)}
	leaving := dialPeer(t, addr, peerOptions{responder: voter})
	staying := dialPeer(t, addr, peerOptions{})

	done := make(chan *status.Status, 1)
	go func() {
		_, st := call(t, ctx, leaving, "gitaly.OperationService/UserCreateBranch", `{"branch_name": "YQ=="}`, tx(1)...)
		done <- st
	}()
	select {
	case <-voter.arrived:
	case <-ctx.Done():
		t.Fatal("the vote never reached the peer")
	}
	leaving.Close() // the peer goes away while serve waits for its vote
	if st := <-done; st.Code() == codes.OK {
		t.Fatalf("the departed peer's call succeeded")
	}
	fwd := waitEvent(t, ctx, srv, func(e *Event) bool { return e.Call.Dir == calls.Forward })
	if c := fwd.Call.Status.Code(); c != codes.Canceled && c != codes.Aborted {
		t.Errorf("forward call of the departed peer ended %s, want CANCELLED or ABORTED", c)
	}

	// Everyone else is still served.
	if got, st := call(t, ctx, staying, "gitaly.OperationService/UserCreateBranch", `{"branch_name": "Yg=="}`, tx(2)...); st.Code() != codes.OK {
		t.Fatalf("the other peer's call: %s %v", got, st)
	}
	events := journal.all()
	if len(events) != 4 {
		t.Fatalf("journal has %d events, want 4 (a vote and a forward call for each peer)", len(events))
	}
	vote := events[0]
	if vote.Call.Dir != calls.Reverse || vote.Call.Status.Code() == codes.OK || vote.Cause != fwd.ID {
		t.Errorf("interrupted vote: %s %v cause %d, want a failed reverse call caused by %d", vote.Call.Dir, vote.Call.Status, vote.Cause, fwd.ID)
	}
	waitPeers(t, ctx, srv, 1)
}

func TestReverseCallToGonePeer(t *testing.T) {
	ctx := testContext(t)
	srv, addr, journal := startServe(t, `
rules:
  - match: {method: gitaly.OperationService/UserDeleteBranch}
    do:
      - call: {method: gitaly.RefTransaction/StopTransaction, to: "1", as: stop}
      - reply: {}
`)
	gone := dialPeer(t, addr, peerOptions{})
	waitPeers(t, ctx, srv, 1)
	gone.Close()
	waitPeers(t, ctx, srv, 0)

	// By the admin API (CallPeer): an error before anything is sent.
	_, err := srv.CallPeer(ctx, PeerCall{Peer: 1, Method: "gitaly.RefTransaction/StopTransaction"})
	if !errors.Is(err, ErrUnknownPeer) || !strings.Contains(err.Error(), "peer 1 is not connected (no peer is)") {
		t.Errorf("CallPeer to a gone peer: %v", err)
	}
	// By the script: the call fails UNAVAILABLE and is journaled.
	if _, st := call(t, ctx, dialPlain(t, addr), "gitaly.OperationService/UserDeleteBranch", `{}`); st.Code() != codes.OK {
		t.Fatalf("DeleteBranch: %v", st)
	}
	events := journal.all()
	if len(events) != 2 || events[0].Call.Status.Code() != codes.Unavailable || events[0].Call.Peer.BackchannelID != 1 {
		t.Fatalf("journal: %d events; want the failed reverse call to peer 1 then the forward call", len(events))
	}

	// A peer that goes while an admin call waits for it.
	voter := blockingVoter{arrived: make(chan struct{}, 1)}
	leaving := dialPeer(t, addr, peerOptions{responder: voter})
	p := waitPeers(t, ctx, srv, 1)[0]
	result := make(chan *Event, 1)
	go func() {
		ev, err := srv.CallPeer(ctx, PeerCall{Peer: p.ID, Method: "gitaly.RefTransaction/VoteTransaction"})
		if err != nil {
			t.Errorf("CallPeer: %v", err)
		}
		result <- ev
	}()
	<-voter.arrived
	leaving.Close()
	ev := <-result
	if ev == nil || ev.Call.Status.Code() != codes.Unavailable {
		t.Fatalf("admin call into a peer that left: %v, want UNAVAILABLE", ev)
	}
}

func TestManyPeersWithAReverseCallEach(t *testing.T) {
	if testing.Short() {
		t.Skip("connects 500 peers")
	}
	const n = 500
	ctx := testContext(t)
	srv, addr, journal := startServe(t, voteScript)
	startFarms(t, addr, n)
	peers := waitPeers(t, ctx, srv, n)
	for _, p := range peers {
		if p.Discovery != DiscoveryDone {
			t.Fatalf("peer %d: discovery %s %s", p.ID, p.Discovery, p.DiscoveryError)
		}
	}

	// One reverse call to each, from the admin side, all at once.
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for _, p := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ev, err := srv.CallPeer(ctx, PeerCall{Peer: p.ID, Method: "gitaly.RefTransaction/VoteTransaction", Request: []byte(fmt.Sprintf(`{"transaction_id": %d}`, p.ID))})
			if err == nil && ev.Call.Status.Code() != codes.OK {
				err = ev.Call.Status.Err()
			}
			if err != nil {
				errs <- fmt.Errorf("peer %d: %w", p.ID, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// And one from the script, to all of them.
	if _, st := call(t, ctx, dialPlain(t, addr), "gitaly.OperationService/UserDeleteBranch", `{}`); st.Code() != codes.OK {
		t.Fatalf("DeleteBranch to all %d peers: %v", n, st)
	}
	if got := len(journal.all()); got != 2*n+1 {
		t.Errorf("journal has %d events, want %d", got, 2*n+1)
	}
	for _, p := range srv.Peers() {
		if p.ReverseCalls != 2 {
			t.Fatalf("peer %d had %d reverse calls, want 2", p.ID, p.ReverseCalls)
		}
	}
}

func TestGarbageConnections(t *testing.T) {
	ctx := testContext(t)
	logs := newLogRecorder()
	srv, addr, journal := startServe(t, voteScript, func(c *Config) {
		c.HandshakeTimeout = 300 * time.Millisecond
		c.Logger = logs.logger()
	})
	good := dialPeer(t, addr, peerOptions{})
	if _, st := call(t, ctx, good, "gitaly.OperationService/UserCreateBranch", `{"branch_name": "YmVmb3Jl"}`, tx(1)...); st.Code() != codes.OK {
		t.Fatalf("before: %v", st)
	}
	cases := []struct {
		name string
		send string
		want string // in the log line that reports the rejection
	}{
		{"http/1", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", `neither gRPC (HTTP/2) nor the backchannel handshake: it began with "GET / HTTP/"`},
		{"garbage after magic", "backchannel\x00\xff\x01garbage-garbage-garbage", "backchannel: accept forward stream"},
		{"stops after 5 bytes", "backc", "timeout"},
		{"random bytes", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03tls-hello", "neither gRPC (HTTP/2) nor the backchannel handshake"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := io.WriteString(conn, tc.send); err != nil {
				t.Fatal(err)
			}
			line := logs.wait(t, ctx, "connection rejected")
			if !strings.Contains(line, tc.want) || !strings.Contains(line, "remote="+conn.LocalAddr().String()) {
				t.Errorf("rejection reported as:\n%s\nwant the remote address and %q", line, tc.want)
			}
			conn.SetReadDeadline(time.Now().Add(20 * time.Second))
			if _, err := io.Copy(io.Discard, conn); isTimeout(err) {
				t.Errorf("serve did not close the connection: %v", err)
			}
			if got := srv.Stats().RejectedConnections; got != uint64(i+1) {
				t.Errorf("rejections: %d, want %d", got, i+1)
			}
			// Serve still answers the good peer, vote included.
			if _, st := call(t, ctx, good, "gitaly.OperationService/UserCreateBranch", `{"branch_name": "YWZ0ZXI="}`, tx(1)...); st.Code() != codes.OK {
				t.Fatalf("after %s: %v", tc.name, st)
			}
		})
	}
	if got, want := len(journal.all()), 2*(len(cases)+1); got != want {
		t.Errorf("journal has %d events, want %d", got, want)
	}
	if n := len(srv.Peers()); n != 1 {
		t.Errorf("%d peers, want the good one", n)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestGoneIDsAreNeverReused(t *testing.T) {
	ctx := testContext(t)
	srv, addr, _ := startServe(t, voteScript)
	first := dialPeer(t, addr, peerOptions{})
	waitPeers(t, ctx, srv, 1)
	first.Close()
	waitPeers(t, ctx, srv, 0)
	dialPeer(t, addr, peerOptions{})
	if p := waitPeers(t, ctx, srv, 1)[0]; p.ID != backchannel.ID(2) {
		t.Errorf("the second peer got ID %d, want 2", p.ID)
	}
}
