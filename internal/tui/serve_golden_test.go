package tui

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/exp/golden"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/bcctl/bcctl/internal/journal"
	"github.com/bcctl/bcctl/internal/tui/forward"
	"github.com/bcctl/bcctl/internal/tui/internal/tuitest"
	"github.com/bcctl/bcctl/internal/tui/registry"
)

var (
	goldenPeers = []registry.Peer{
		{ID: 1, Addr: "127.0.0.1:51234", ConnectedAt: clock.Add(-5 * time.Minute), ForwardCalls: 3, ReverseCalls: 3,
			LastCall: clock.Add(-10 * time.Second), Services: []string{"gitaly.RefTransaction"}},
		{ID: 2, Addr: "127.0.0.1:51240", ConnectedAt: clock.Add(-1 * time.Minute)},
	}
	goldenJournal = []journal.Entry{
		{ID: 1, Time: clock.Add(-12 * time.Second), Dir: journal.DirReverse, Origin: journal.OriginMade, By: journal.ByScript,
			Peer: &journal.Peer{ID: 1, Addr: "127.0.0.1:51234"}, Method: "gitaly.RefTransaction/VoteTransaction",
			Metadata: map[string][]string{"x-request-id": {"42"}}, Requests: []json.RawMessage{json.RawMessage(`{"transaction_id":"42","node":"gitaly-1"}`)},
			Responses: []json.RawMessage{json.RawMessage(`{"state":"COMMIT"}`)}, Status: &journal.Status{Code: "OK"}, DurationMS: 1.234,
			Rule: &journal.Rule{Name: "vote-before-branch", Pos: "upstream.yaml:3:5"}, Cause: 2},
		{ID: 2, Time: clock.Add(-12 * time.Second), Dir: journal.DirForward, Origin: journal.OriginAnswered, By: journal.ByScript,
			Peer: &journal.Peer{ID: 1, Addr: "127.0.0.1:51234"}, Method: "gitaly.OperationService/UserCreateBranch",
			Status: &journal.Status{Code: "OK"}, DurationMS: 3.5, Rule: &journal.Rule{Name: "vote-before-branch", Pos: "upstream.yaml:3:5"}},
		{ID: 3, Time: clock.Add(-2 * time.Second), Dir: journal.DirForward, Origin: journal.OriginAnswered, By: journal.ByScript,
			Peer: &journal.Peer{Addr: "127.0.0.1:51300"}, Method: "acme.Users/Get",
			Status: &journal.Status{Code: "NOT_FOUND", Message: "no user 7"}, DurationMS: 0.4},
		// Item 10: a long status code keeps its column.
		{ID: 4, Time: clock.Add(-1 * time.Second), Dir: journal.DirForward, Origin: journal.OriginAnswered, By: journal.ByScript,
			Peer: &journal.Peer{Addr: "127.0.0.1:51300"}, Method: "acme.Users/Delete",
			Status: &journal.Status{Code: "UNIMPLEMENTED", Message: "no rule answers acme.Users/Delete"}, DurationMS: 29},
	}
)

// staticPeers is a PeerSource whose peers never change.
type staticPeers []registry.Peer

func (s staticPeers) WatchPeers(ctx context.Context) ([]registry.Peer, <-chan registry.Event) {
	ch := make(chan registry.Event)
	go func() {
		<-ctx.Done()
		close(ch)
	}()
	return s, ch
}

// newServeGoldenModel is the serve program over peers and entries, its
// reverse calls going nowhere (the tests feed their events).
func newServeGoldenModel(t *testing.T, peers []registry.Peer, entries []journal.Entry) tea.Model {
	feed := NewJournalFeed()
	m := NewServeModel(ServeConfig{
		Peers: staticPeers(peers), Journal: feed, Caller: RegistryCaller(nil), Schema: tuitest.Corpus(t),
		Title: "listening on 127.0.0.1:9000", Location: time.UTC, Now: fixedNow,
	})
	var model tea.Model = m
	model, _ = model.Update(m.fwd.Init()()) // a FileSource does no I/O
	model, _ = model.Update(peersMsg{peers: peers})
	model, _ = model.Update(journalMsg{entries: entries})
	return model
}

func TestServeGolden(t *testing.T) {
	newModel := func(peers []registry.Peer, entries []journal.Entry) tea.Model {
		return newServeGoldenModel(t, peers, entries)
	}
	t.Run("empty", func(t *testing.T) {
		_, s := screen(t, newModel(nil, nil), 100, 24)
		golden.RequireEqual(t, []byte(s))
	})
	t.Run("peers", func(t *testing.T) {
		_, s := screen(t, newModel(goldenPeers, goldenJournal), 120, 30)
		golden.RequireEqual(t, []byte(s))
	})
	t.Run("reverse-call", func(t *testing.T) {
		vote := tuitest.Method(t, "gitaly.RefTransaction/VoteTransaction")
		msgs := []tea.Msg{runes("c"), runes("v"), runes("o"), runes("t"), runes("e"), keyEnter, picked(vote), keySend,
			forward.StartedMsg{Run: 1},
			forward.HeaderMsg{Run: 1, MD: metadata.MD{}},
			forward.ResponseMsg{Run: 1, Msg: message(t, vote.Output(), `{"state": "ABORT"}`)},
			forward.TrailerMsg{Run: 1, Status: status.New(codes.OK, ""), Elapsed: 2 * time.Millisecond},
		}
		_, s := screen(t, newModel(goldenPeers, goldenJournal), 120, 30, msgs...)
		golden.RequireEqual(t, []byte(s))
	})
	// Item 9: another peer's screen does not show the first peer's
	// result.
	t.Run("reverse-other-peer", func(t *testing.T) {
		msgs := append(reverseCallDone(t), keyF2, tea.KeyMsg{Type: tea.KeyDown}, runes("c"))
		_, s := screen(t, newModel(goldenPeers, goldenJournal), 120, 30, msgs...)
		golden.RequireEqual(t, []byte(s))
	})
	// Item 13: the methods the peer reported by reflection come first.
	t.Run("reverse-picker-offered", func(t *testing.T) {
		var offered []protoreflect.MethodDescriptor
		for _, name := range []string{"gitaly.RefTransaction/VoteTransaction", "gitaly.RefTransaction/StopTransaction"} {
			offered = append(offered, tuitest.Method(t, name))
		}
		_, s := screen(t, newModel(goldenPeers, goldenJournal), 120, 30, runes("c"), peerMethodsMsg{peer: 1, methods: offered})
		golden.RequireEqual(t, []byte(s))
	})
	t.Run("notice", func(t *testing.T) {
		// A script that changed but does not load: the first line of the
		// report shows in the peer pane's title.
		_, s := screen(t, newModel(goldenPeers, nil), 120, 16,
			noticeMsg("serve.yaml changed but does not load; the previous script stays in force:\nserve.yaml:3:5: unknown method"))
		golden.RequireEqual(t, []byte(s))
	})
	t.Run("journal-filtered", func(t *testing.T) {
		_, s := screen(t, newModel(goldenPeers, goldenJournal), 120, 30,
			keyTab, runes("/"), runes("v"), runes("o"), runes("t"), runes("e"), keyEnter, keyEnter)
		golden.RequireEqual(t, []byte(s))
	})
}
