package tui

import (
	"context"
	"net"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/exp/teatest"
	"google.golang.org/grpc/codes"

	"github.com/bcctl/bcctl/internal/script"
	"github.com/bcctl/bcctl/internal/serve"
	"github.com/bcctl/bcctl/internal/tui/internal/tuitest"
	"github.com/bcctl/bcctl/internal/tui/registry"
)

// startServe runs a bcctl serve engine on 127.0.0.1 with the upstream
// script of the tests.
func startServe(t *testing.T) (*serve.Server, string) {
	t.Helper()
	src := tuitest.Corpus(t)
	sc, err := script.Parse(context.Background(), "upstream.yaml", []byte(tuitest.UpstreamScript), script.Config{Upstream: src})
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
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-served
	})
	return srv, lis.Addr().String()
}

// TestFlowServeEngine: the serve program over the real serve engine: a
// peer shows up with the services found on its backchannel, its calls are
// journaled and counted, and a reverse call made from the TUI goes
// through serve (journaled as made by the TUI, counted for the peer).
func TestFlowServeEngine(t *testing.T) {
	srv, addr := startServe(t)
	cfg := ServeEngine(srv.Hub)
	cfg.Context = tuitest.Context(t)
	tm := teatest.NewTestModel(t, NewServeModel(cfg), teatest.WithInitialTermSize(130, 36))
	t.Cleanup(func() {
		_ = tm.Quit()
		tm.WaitFinished(t, teatest.WithFinalTimeout(10*time.Second))
	})
	f := &flow{t: t, tm: tm, src: tuitest.Corpus(t)}

	voter := tuitest.DownstreamEngine(t, `
backchannel:
  - match: {method: gitaly.RefTransaction/VoteTransaction}
    reply: {state: COMMIT}
  - match: {method: acme.Users/Chat}
    each: [{send: {text: "peer says ${req.text}"}}]
`, nil)
	f.cc = tuitest.Dial(t, addr, voter)
	f.waitFor("1 peer", "▸ 1 ", "gitaly.RefTransaction")

	if r := f.result(f.createBranch("feature/served")); r.status.Code() != codes.OK {
		t.Fatalf("UserCreateBranch: %v", r.status)
	}
	f.waitFor("rev→ peer 1", "fwd← peer 1", "vote-before-branch")

	f.keys(runes("c"))
	for _, r := range "votetrans" {
		f.keys(runes(string(r)))
	}
	f.keys(keyEnter)
	f.waitFor("gitaly.RefTransaction/VoteTransaction (unary")
	wctx, stopWatch := context.WithCancel(tuitest.Context(t))
	defer stopWatch()
	snap, changes := cfg.Peers.WatchPeers(wctx)
	if len(snap) != 1 || snap[0].ForwardCalls != 1 || snap[0].ReverseCalls != 1 || snap[0].LastCall.IsZero() {
		t.Errorf("snapshot %+v, want the peer with 1 call each way", snap)
	}
	f.keys(keySend)
	f.waitFor(`"state": "COMMIT"`, "Status (")
	// The counters come from serve's snapshot, refreshed once a second.
	for updated := false; !updated; {
		ev := recv(t, changes)
		updated = ev.Kind == registry.Updated && ev.Peer.ReverseCalls == 2
	}
	f.keys(keyF2)
	f.waitFor("by tui")

	// Issue 15, items 9, 12 and 13: the picker offers what the peer
	// reported by reflection first; a bidi call into the peer shows each
	// reply as it arrives while the stream stays open, and ends when
	// sending ends.
	f.keys(runes("c"), keyCtrlL)
	f.waitFor("offered by peer 1")
	for _, r := range "userschat" {
		f.keys(runes(string(r)))
	}
	f.keys(keyEnter)
	f.waitFor("acme.Users/Chat (bidi stream")
	f.keys(keySend)
	f.waitFor("peer says", "#2 sending, 1 sent")
	f.keys(tea.KeyMsg{Type: tea.KeyCtrlO})
	f.waitFor("#2 OK")
	f.keys(keyF2)
	f.waitFor("acme.Users/Chat")

	_ = tm.Quit()
	final := tm.FinalModel(t, teatest.WithFinalTimeout(10*time.Second)).(ServeModel)
	var byTUI, chat bool
	for _, e := range final.journal.Entries() {
		byTUI = byTUI || (e.By == "tui" && e.Method == "gitaly.RefTransaction/VoteTransaction" && e.Status != nil && e.Status.Code == "OK")
		chat = chat || (e.By == "tui" && e.Method == "acme.Users/Chat" && len(e.Requests) == 1 && len(e.Responses) == 1)
	}
	if !byTUI || !chat {
		t.Errorf("the journal lacks a reverse call made from the TUI (vote %v, chat %v)", byTUI, chat)
	}
	peers := srv.Peers()
	if len(peers) != 1 || peers[0].ReverseCalls != 3 || peers[0].ForwardCalls != 1 {
		t.Errorf("serve counts %+v, want 1 forward and 3 reverse calls", peers)
	}
}
