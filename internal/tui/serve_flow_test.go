package tui

import (
	"io"
	"testing"
	"time"

	"github.com/charmbracelet/x/exp/teatest"
	"google.golang.org/grpc/codes"

	"github.com/bcctl/bcctl/internal/journal"
	"github.com/bcctl/bcctl/internal/tui/internal/tuitest"
)

// TestFlowServe: the serve program over a real upstream. A peer connects
// and shows up in the table; its UserCreateBranch (with the vote it causes)
// shows up in the journal; the person calls VoteTransaction into the
// peer's backchannel from the reverse-call screen and sees the peer's
// answer; the peer leaves and its row goes.
func TestFlowServe(t *testing.T) {
	feed := NewJournalFeed()
	src := tuitest.Corpus(t)
	w := journal.NewWriter(io.Discard, journal.Options{Resolver: src.Types(), Tap: feed.Add})
	upstream := tuitest.StartUpstream(t, "", w)

	m := NewServeModel(ServeConfig{
		Context: tuitest.Context(t),
		Peers:   RegistryPeers(upstream.Registry), Journal: feed,
		Caller: RegistryCaller(upstream.Registry), Schema: src,
		Title: "listening on " + upstream.Addr,
	})
	tm := teatest.NewTestModel(t, m, teatest.WithInitialTermSize(120, 36))
	t.Cleanup(func() {
		_ = tm.Quit()
		tm.WaitFinished(t, teatest.WithFinalTimeout(10*time.Second))
	})
	f := &flow{t: t, tm: tm, src: src}
	f.waitFor("0 peers", "no peers connected yet")

	voter := tuitest.DownstreamEngine(t, "backchannel:\n  - match: {method: gitaly.RefTransaction/VoteTransaction}\n    reply: {state: STOP}\n", nil)
	f.cc = tuitest.Dial(t, upstream.Addr, voter)
	f.waitFor("1 peer", "▸ 1 ")

	r := f.result(f.createBranch("feature/watched"))
	if r.status.Code() != codes.Aborted { // the voter said STOP
		t.Fatalf("UserCreateBranch got %v, want ABORTED after the STOP vote", r.status)
	}
	f.waitFor("rev→ peer 1", "gitaly.RefTransaction/VoteTransaction", "ABORTED")

	f.keys(runes("c")) // call the selected peer
	f.waitFor("Reverse call into peer 1", "type to filter methods")
	for _, r := range "votetrans" {
		f.keys(runes(string(r)))
	}
	f.keys(keyEnter)
	f.waitFor("gitaly.RefTransaction/VoteTransaction (unary")
	f.keys(keySend)
	f.waitFor(`"state": "STOP"`, "Status (")

	f.keys(keyF2) // back to the peers
	_ = f.cc.Close()
	f.waitFor("0 peers")

	_ = tm.Quit()
	final := tm.FinalModel(t, teatest.WithFinalTimeout(10*time.Second)).(ServeModel)
	if n := len(final.peers.Peers()); n != 0 {
		t.Errorf("the table still has %d peers after the peer left", n)
	}
	seen := map[string]bool{}
	for _, e := range final.journal.Entries() {
		seen[e.Dir+" "+e.Method] = true
	}
	for _, want := range []string{"forward gitaly.OperationService/UserCreateBranch", "reverse gitaly.RefTransaction/VoteTransaction"} {
		if !seen[want] {
			t.Errorf("the journal lacks a %s entry (has %v)", want, seen)
		}
	}
}
