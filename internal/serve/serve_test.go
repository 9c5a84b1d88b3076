package serve

import (
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/script"
)

func TestVoteFlowMultiplexed(t *testing.T) {
	ctx := testContext(t)
	srv, addr, journal := startServe(t, voteScript)
	conn := dialPeer(t, addr, peerOptions{})

	got, st := call(t, ctx, conn, "gitaly.OperationService/UserCreateBranch", `{"branch_name": "ZmVhdHVyZS94"}`, tx(42)...)
	if st.Code() != codes.OK {
		t.Fatalf("UserCreateBranch: %v", st)
	}
	if want := `{"branch":{"name":"feature/x","target_commit":{"id":"voted"}}}`; got != want {
		t.Errorf("UserCreateBranch reply: got %s, want %s", got, want)
	}

	events := journal.all()
	if len(events) != 2 {
		t.Fatalf("journal has %d events, want 2 (the vote, then the forward call)", len(events))
	}
	vote, fwd := events[0], events[1]
	if vote.Call.Dir != calls.Reverse || vote.Call.Method != "gitaly.RefTransaction/VoteTransaction" || vote.By != ByScript {
		t.Errorf("first event: got %s %s by %q, want the reverse vote made by the script", vote.Call.Dir, vote.Call.Method, vote.By)
	}
	if fwd.Call.Dir != calls.Forward || fwd.Call.Method != "gitaly.OperationService/UserCreateBranch" || fwd.Call.Rule.Name != "vote-before-branch" {
		t.Errorf("second event: got %s %s rule %q, want the forward UserCreateBranch answered by vote-before-branch", fwd.Call.Dir, fwd.Call.Method, fwd.Call.Rule.Name)
	}
	if vote.Cause != fwd.ID || vote.ID == fwd.ID {
		t.Errorf("vote: id %d cause %d; forward id %d: the vote must name the forward call as its cause", vote.ID, vote.Cause, fwd.ID)
	}
	if got := compact(t, vote.Call.Requests[0]); !strings.Contains(got, `"transaction_id":"42"`) {
		t.Errorf("vote request %s does not carry the transaction from the metadata", got)
	}
	if vote.Call.Peer.BackchannelID == 0 || vote.Call.Peer.BackchannelID != fwd.Call.Peer.BackchannelID {
		t.Errorf("vote went to peer %d, forward call came from peer %d: want the same multiplexed peer", vote.Call.Peer.BackchannelID, fwd.Call.Peer.BackchannelID)
	}

	peers := waitPeers(t, ctx, srv, 1)
	p := peers[0]
	if p.ForwardCalls != 1 || p.ReverseCalls != 1 {
		t.Errorf("peer counters: forward %d reverse %d, want 1 and 1", p.ForwardCalls, p.ReverseCalls)
	}
	if p.LastCall == nil || p.LastCall.Method != "gitaly.OperationService/UserCreateBranch" {
		t.Errorf("last call: got %+v, want UserCreateBranch", p.LastCall)
	}
	if p.Discovery != DiscoveryDone || !slices.Equal(p.Services, []string{"gitaly.RefTransaction"}) {
		t.Errorf("services: %s %v %q, want done [gitaly.RefTransaction]", p.Discovery, p.Services, p.DiscoveryError)
	}
	if !srv.Check().OK() {
		t.Errorf("expectations: %s", srv.Check())
	}
}

func TestPlainClientHasNoBackchannel(t *testing.T) {
	ctx := testContext(t)
	srv, addr, journal := startServe(t, voteScript)
	conn := dialPlain(t, addr)

	got, st := call(t, ctx, conn, "gitaly.OperationService/UserCreateBranch", `{"branch_name": "bWFpbg=="}`)
	if st.Code() != codes.OK || got != `{"branch":{"name":"main","target_commit":{"id":"unvoted"}}}` {
		t.Fatalf("UserCreateBranch without a transaction: %s %v", got, st)
	}
	_, st = call(t, ctx, conn, "gitaly.OperationService/UserCreateBranch", `{"branch_name": "ZmVhdHVyZS95"}`, tx(1)...)
	if st.Code() != codes.Aborted || !strings.Contains(st.Message(), "UNAVAILABLE") || !strings.Contains(st.Message(), "plain gRPC client") {
		t.Fatalf("UserCreateBranch with a transaction from a plain client: got %v, want ABORTED saying the caller has no backchannel", st)
	}
	events := journal.all()
	if len(events) != 3 {
		t.Fatalf("journal has %d events, want 3", len(events))
	}
	if e := events[1]; e.Call.Dir != calls.Reverse || e.Call.Status.Code() != codes.Unavailable || e.Cause != events[2].ID {
		t.Errorf("failed vote: %s %s cause %d, want a reverse UNAVAILABLE caused by %d", e.Call.Dir, e.Call.Status.Code(), e.Cause, events[2].ID)
	}
	if n := len(srv.Peers()); n != 0 {
		t.Errorf("plain client appears in the registry: %d peers", n)
	}
	if s := srv.Stats(); s.ForwardCalls != 2 || s.ReverseCalls != 1 {
		t.Errorf("stats: %+v, want 2 forward and 1 reverse", s)
	}
}

func TestUnknownMethodIsJournaled(t *testing.T) {
	ctx := testContext(t)
	_, addr, journal := startServe(t, voteScript)
	conn := dialPlain(t, addr)
	err := conn.Invoke(ctx, "/gitaly.OperationService/UserCreateBrunch", nil, nil)
	_ = err
	_, st := call(t, ctx, conn, "gitaly.OperationService/UserDeleteBranch", `{}`)
	if st.Code() != codes.OK {
		t.Fatalf("DeleteBranch: %v", st)
	}
	events := journal.all()
	if len(events) != 2 {
		t.Fatalf("journal has %d events, want 2", len(events))
	}
	e := events[0]
	if e.Call.Method != "gitaly.OperationService/UserCreateBrunch" || e.Call.Status.Code() != codes.Unimplemented || !strings.Contains(e.Call.Status.Message(), "UserCreateBranch") {
		t.Errorf("unknown method event: %s %v, want UNIMPLEMENTED suggesting CreateBranch", e.Call.Method, e.Call.Status)
	}
}

func TestCallPeer(t *testing.T) {
	ctx := testContext(t)
	srv, addr, journal := startServe(t, voteScript)
	dialPeer(t, addr, peerOptions{})
	p := waitPeers(t, ctx, srv, 1)[0]

	ev, err := srv.CallPeer(ctx, PeerCall{Peer: p.ID, Method: "gitaly.RefTransaction/VoteTransaction", Request: []byte(`{"transaction_id": 5}`)})
	if err != nil {
		t.Fatalf("CallPeer: %v", err)
	}
	if ev.Call.Status.Code() != codes.OK || len(ev.Call.Responses) != 1 || compact(t, ev.Call.Responses[0]) != `{}` {
		t.Errorf("CallPeer: %v %v, want OK with the COMMIT (empty) reply", ev.Call.Status, ev.Call.Responses)
	}
	if ev.By != ByAdmin || ev.Cause != 0 || ev.Call.Origin != calls.Made {
		t.Errorf("event: by %q cause %d origin %s", ev.By, ev.Cause, ev.Call.Origin)
	}
	if got := journal.all(); len(got) != 1 || got[0] != ev {
		t.Errorf("journal: %d events, want the call", len(got))
	}
	if !srv.Check().OK() {
		t.Errorf("admin calls count for expectations: %s", srv.Check())
	}

	tests := []struct {
		name string
		pc   PeerCall
		want string
		is   error
	}{
		{"unknown peer", PeerCall{Peer: 99, Method: "gitaly.RefTransaction/VoteTransaction"}, "peer 99 is not connected (connected: 1)", ErrUnknownPeer},
		{"unknown method", PeerCall{Peer: p.ID, Method: "gitaly.RefTransaction/Vote"}, "VoteTransaction", nil},
		{"bad field", PeerCall{Peer: p.ID, Method: "gitaly.RefTransaction/VoteTransaction", Request: []byte(`{"transaction": 1}`)}, "transaction", nil},
		{"two requests", PeerCall{Peer: p.ID, Method: "gitaly.RefTransaction/VoteTransaction", Request: []byte(`{} {}`)}, "2 requests", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := srv.CallPeer(ctx, tc.pc)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v does not wrap %v", err, tc.is)
			}
		})
	}
}

func TestCallStepToAllAndByID(t *testing.T) {
	ctx := testContext(t)
	srv, addr, journal := startServe(t, voteScript)
	const n = 3
	for range n {
		dialPeer(t, addr, peerOptions{})
	}
	waitPeers(t, ctx, srv, n)
	plain := dialPlain(t, addr)
	if _, st := call(t, ctx, plain, "gitaly.OperationService/UserDeleteBranch", `{}`); st.Code() != codes.OK {
		t.Fatalf("DeleteBranch (stop all): %v", st)
	}
	var stops []backchannel.ID
	for _, e := range journal.all() {
		if e.Call.Method == "gitaly.RefTransaction/StopTransaction" {
			stops = append(stops, backchannel.ID(e.Call.Peer.BackchannelID))
		}
	}
	slices.Sort(stops)
	if !slices.Equal(stops, []backchannel.ID{1, 2, 3}) {
		t.Errorf("StopTransaction went to %v, want peers 1, 2, 3", stops)
	}

	// A script that calls a peer by ID.
	srv.Reload(parseScript(t, "byid.yaml", `
rules:
  - match: {method: gitaly.OperationService/UserDeleteBranch}
    do:
      - call: {method: gitaly.RefTransaction/StopTransaction, to: "2", expect: {code: OK}}
      - call: {method: gitaly.RefTransaction/StopTransaction, to: "7", as: gone}
      - reply: {}
`))
	if _, st := call(t, ctx, plain, "gitaly.OperationService/UserDeleteBranch", `{}`); st.Code() != codes.OK {
		t.Fatalf("DeleteBranch (by ID): %v", st)
	}
	events := journal.all()
	byID, gone := events[len(events)-3], events[len(events)-2]
	if byID.Call.Peer.BackchannelID != 2 || byID.Call.Status.Code() != codes.OK {
		t.Errorf("call to peer 2: peer %d %v", byID.Call.Peer.BackchannelID, byID.Call.Status)
	}
	if gone.Call.Peer.BackchannelID != 7 || gone.Call.Status.Code() != codes.Unavailable || !strings.Contains(gone.Call.Status.Message(), "peer 7 is not connected (connected: 1, 2, 3)") {
		t.Errorf("call to peer 7: peer %d %v, want UNAVAILABLE naming the connected peers", gone.Call.Peer.BackchannelID, gone.Call.Status)
	}
}

func TestOnConnect(t *testing.T) {
	ctx := testContext(t)
	srv, addr, journal := startServe(t, `
on_connect:
  - call: {method: gitaly.RefTransaction/VoteTransaction, with: {node: "peer-${peer.id}"}, expect: {code: OK}}
  - call: {method: gitaly.RefTransaction/StopTransaction, expect: {code: NOT_FOUND}}
`)
	dialPeer(t, addr, peerOptions{})
	// Wait for the peer's failed on_connect to show.
	snapshot, changes := srv.WatchPeers(ctx)
	var p PeerView
	if len(snapshot) == 1 {
		p = snapshot[0]
	}
	for p.OnConnectError == "" {
		select {
		case c := <-changes:
			p = c.Peer
		case <-ctx.Done():
			t.Fatal("on_connect error never reported")
		}
	}
	if !strings.Contains(p.OnConnectError, "serve.yaml:4:5") || !strings.Contains(p.OnConnectError, "NOT_FOUND") {
		t.Errorf("on_connect error %q does not name the step and the expectation", p.OnConnectError)
	}
	events := journal.all()
	if len(events) != 2 || compact(t, events[0].Call.Requests[0]) != `{"node":"peer-1"}` {
		t.Fatalf("journal: %d events, want the two on_connect calls, the first to node peer-1", len(events))
	}
}

// TestPeerIDIsNeverTakenFromMetadata: whatever a caller writes in its
// metadata, serve's `call` steps go to the caller's own backchannel (or
// nowhere, for a plain client).
func TestPeerIDIsNeverTakenFromMetadata(t *testing.T) {
	ctx := testContext(t)
	srv, addr, journal := startServe(t, voteScript)
	victim := dialPeer(t, addr, peerOptions{})
	waitPeers(t, ctx, srv, 1)
	spoof := append(tx(1), "x-backchannel-id", "1", "backchannel-id", "1", "peer-id", "1", "x-peer-id", "1")
	_, st := call(t, ctx, dialPlain(t, addr), "gitaly.OperationService/UserCreateBranch", `{}`, spoof...)
	if st.Code() != codes.Aborted {
		t.Fatalf("a plain client claiming to be peer 1: %v, want ABORTED (no backchannel)", st)
	}
	other := dialPeer(t, addr, peerOptions{})
	waitPeers(t, ctx, srv, 2)
	if _, st := call(t, ctx, other, "gitaly.OperationService/UserCreateBranch", `{}`, spoof...); st.Code() != codes.OK {
		t.Fatalf("peer 2 claiming to be peer 1: %v", st)
	}
	_ = victim
	for _, e := range journal.all() {
		if e.Call.Dir == calls.Reverse && e.Call.Peer.BackchannelID == 1 {
			t.Errorf("a reverse call went to peer 1, whose ID the callers only wrote in their metadata: %+v", e.Call)
		}
	}
	if p, _ := srv.Peer(1); p.ReverseCalls != 0 {
		t.Errorf("peer 1 had %d reverse calls", p.ReverseCalls)
	}
}

// eventsHandler passes each response and the status to channels.
type eventsHandler struct {
	responses chan proto.Message
	status    chan *status.Status
}

func (h eventsHandler) OnResolveMethod(protoreflect.MethodDescriptor) {}
func (h eventsHandler) OnSendHeaders(metadata.MD)                     {}
func (h eventsHandler) OnReceiveHeaders(metadata.MD)                  {}
func (h eventsHandler) OnReceiveResponse(m proto.Message)             { h.responses <- m }
func (h eventsHandler) OnReceiveTrailers(st *status.Status, _ metadata.MD) {
	h.status <- st
}

// TestCallPeerMessageByMessage: a reverse call whose requests are
// supplied while it runs (as a person sends a bidi stream message by
// message) and whose responses are reported as they arrive, bounded by
// ctx alone; the journal has every message.
func TestCallPeerMessageByMessage(t *testing.T) {
	ctx := testContext(t)
	srv, addr, journal := startServe(t, voteScript)
	chat := `
backchannel:
  - match: {method: acme.Users/Chat}
    each: [{send: {text: "echo ${req.text}"}}]
`
	peer := script.NewEngine(parseScript(t, "peer.yaml", chat), script.Downstream, script.Options{})
	dialPeer(t, addr, peerOptions{responder: peer, services: []string{"acme.Users"}})
	p := waitPeers(t, ctx, srv, 1)[0]

	texts := make(chan string)
	h := eventsHandler{responses: make(chan proto.Message, 4), status: make(chan *status.Status, 1)}
	done := make(chan error, 1)
	go func() {
		_, err := srv.CallPeer(ctx, PeerCall{
			Peer: p.ID, Method: "acme.Users/Chat", Timeout: -1, Events: h,
			Requests: func(msg proto.Message) error {
				text, ok := <-texts
				if !ok {
					return io.EOF
				}
				return dynamic.ParseJSON([]byte(`{"text": "`+text+`"}`), msg, nil)
			},
		})
		done <- err
	}()
	for _, text := range []string{"one", "two"} {
		texts <- text
		select {
		case r := <-h.responses:
			if got := compact(t, r); got != `{"text":"echo `+text+`"}` {
				t.Fatalf("response to %q: %s", text, got)
			}
		case <-ctx.Done():
			t.Fatalf("no response to %q", text)
		}
	}
	close(texts)
	if st := <-h.status; st.Code() != codes.OK {
		t.Fatalf("status %v", st)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	evs := journal.all()
	if len(evs) != 1 || len(evs[0].Call.Requests) != 2 || len(evs[0].Call.Responses) != 2 {
		t.Fatalf("journal %+v, want the call with 2 requests and 2 responses", evs)
	}
}

// TestFailedReverseCallHasNoReply: a reverse call that fails has no reply,
// so a template reading its reply's fields renders them as absent, never
// as the zero values of a reply (COMMIT is the zero of the vote's state).
func TestFailedReverseCallHasNoReply(t *testing.T) {
	ctx := testContext(t)
	_, addr, _ := startServe(t, `
rules:
  - match: {method: gitaly.OperationService/UserCreateBranch}
    do:
      - call:
          method: gitaly.RefTransaction/VoteTransaction
          expect: {code: OK}
          as: vote
          else: {code: ABORTED, message: "vote was ${vote.code} [${vote.reply.state}] [${vote.reply}]"}
      - reply: {}
`)
	peer := dialPeer(t, addr, peerOptions{responder: script.NewEngine(parseScript(t, "peer.yaml", `
backchannel:
  - match: {method: gitaly.RefTransaction/VoteTransaction}
    fail: {code: UNAVAILABLE, message: "no quorum"}
`), script.Downstream, script.Options{})})
	_, st := call(t, ctx, peer, "gitaly.OperationService/UserCreateBranch", `{}`)
	if want := "vote was UNAVAILABLE [] []"; st.Code() != codes.Aborted || st.Message() != want {
		t.Errorf("forward call: %v, want ABORTED %q", st, want)
	}
}
