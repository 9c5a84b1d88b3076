package tui

import (
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/golden"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/tui/answer"
	"github.com/bcctl/bcctl/internal/tui/forward"
	"github.com/bcctl/bcctl/internal/tui/internal/tuitest"
)

// clock is the fixed time of the golden screens.
var clock = time.Date(2026, 11, 24, 14, 2, 11, 0, time.UTC)

func fixedNow() time.Time { return clock }

// screen renders m after msgs at width × height, ANSI stripped.
func screen(t *testing.T, m tea.Model, width, height int, msgs ...tea.Msg) (tea.Model, string) {
	t.Helper()
	m, _ = m.Update(tea.WindowSizeMsg{Width: width, Height: height})
	for _, msg := range msgs {
		m, _ = m.Update(msg)
	}
	return m, ansi.Strip(m.View())
}

func msgOf(t *testing.T, md interface{ FullName() any }) {}

func jsonMsg(t *testing.T, desc interface {
	proto.Message
}, text string) proto.Message {
	return nil
}

func TestAnswerGolden(t *testing.T) {
	src := tuitest.Corpus(t)
	vote := tuitest.Method(t, "gitaly.RefTransaction/VoteTransaction")
	chat := tuitest.Method(t, "acme.Users/Chat")
	parse := func(md interface {
		Input() any
	}) {
	}
	_ = parse
	req := dynamicpb.NewMessage(vote.Input())
	if err := dynamic.ParseJSON([]byte(`{"transaction_id": 42, "node": "gitaly-1", "reference_updates_hash": "YWJj", "phase": "PREPARED_PHASE"}`), req, nil); err != nil {
		t.Fatal(err)
	}
	chatIn := dynamicpb.NewMessage(chat.Input())
	if err := dynamic.ParseJSON([]byte(`{"from": "ada", "text": "hello"}`), chatIn, nil); err != nil {
		t.Fatal(err)
	}
	chatOut := dynamicpb.NewMessage(chat.Output())
	if err := dynamic.ParseJSON([]byte(`{"from": "bcctl", "text": "hi ada"}`), chatOut, nil); err != nil {
		t.Fatal(err)
	}
	call1 := &answer.Call{ID: 1, Method: vote, Metadata: metadata.Pairs("x-transaction", "42"),
		Peer: dynamic.Peer{Addr: "127.0.0.1:9000"}, Arrived: clock.Add(-3 * time.Second), Deadline: clock.Add(57 * time.Second)}
	call2 := &answer.Call{ID: 2, Method: vote, Metadata: metadata.Pairs("x-transaction", "43"),
		Peer: dynamic.Peer{Addr: "127.0.0.1:9000"}, Arrived: clock.Add(-1 * time.Second), Deadline: clock.Add(3 * time.Second)}
	call3 := &answer.Call{ID: 3, Method: chat, Metadata: metadata.MD{},
		Peer: dynamic.Peer{Addr: "127.0.0.1:9000"}, Arrived: clock.Add(-10 * time.Second)}
	events := []tea.Msg{
		answer.ArrivedMsg{Call: call3},
		answer.ReceivedMsg{ID: 3, Msg: chatIn},
		answer.SentMsg{ID: 3, Msg: chatOut, By: answer.Person},
		answer.ArrivedMsg{Call: call1},
		answer.ReceivedMsg{ID: 1, Msg: req},
		answer.HalfClosedMsg{ID: 1},
		answer.ArrivedMsg{Call: call2},
		answer.ReceivedMsg{ID: 2, Msg: req},
		answer.HalfClosedMsg{ID: 2},
	}
	newModel := func(withForward bool) AnswerModel {
		cfg := AnswerConfig{Responder: answer.NewResponder(answer.Options{}), Resolver: src.Types(),
			Title: "connected to 127.0.0.1:9000", Now: fixedNow}
		if withForward {
			cfg.Forward = &forward.Config{Source: src, Invoker: forward.ConnInvoker(nil), Target: "127.0.0.1:9000"}
		}
		return NewAnswerModel(cfg)
	}
	t.Run("empty", func(t *testing.T) {
		_, s := screen(t, newModel(true), 100, 24)
		golden.RequireEqual(t, []byte(s))
	})
	t.Run("pending", func(t *testing.T) {
		_, s := screen(t, newModel(true), 120, 32, events...)
		golden.RequireEqual(t, []byte(s))
	})
	_ = codes.OK
	_ = status.New
}
