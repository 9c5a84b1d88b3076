package tui

import (
	"errors"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/golden"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/tui/answer"
	"github.com/bcctl/bcctl/internal/tui/forward"
	"github.com/bcctl/bcctl/internal/tui/internal/tuitest"
	"github.com/bcctl/bcctl/internal/tui/picker"
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

// message parses JSON as a message of md.
func message(t *testing.T, md protoreflect.MessageDescriptor, text string) proto.Message {
	t.Helper()
	msg := dynamicpb.NewMessage(md)
	if err := dynamic.ParseJSON([]byte(text), msg, nil); err != nil {
		t.Fatal(err)
	}
	return msg
}

// goldenCalls are three reverse calls: two votes with deadlines and a chat
// stream without one.
func goldenCalls(t *testing.T) (events []tea.Msg, vote1 *answer.Call) {
	vote := tuitest.Method(t, "gitaly.RefTransaction/VoteTransaction")
	chat := tuitest.Method(t, "acme.Users/Chat")
	req := message(t, vote.Input(), `{"transaction_id": 42, "node": "gitaly-1", "reference_updates_hash": "YWJj", "phase": "PREPARED_PHASE"}`)
	peer := calls.Peer{Addr: "127.0.0.1:9000"}
	// What grpc-go hands a server: the transport's headers with the
	// caller's own.
	transport := func(kv ...string) metadata.MD {
		return metadata.Pairs(append([]string{":authority", "127.0.0.1:9000", "content-type", "application/grpc", "user-agent", "grpc-go/1.85.0"}, kv...)...)
	}
	call1 := &answer.Call{ID: 1, Method: vote, Metadata: transport("x-request-id", "42"), Peer: peer,
		Arrived: clock.Add(-3 * time.Second), Deadline: clock.Add(57 * time.Second)}
	call2 := &answer.Call{ID: 2, Method: vote, Metadata: transport("x-request-id", "43"), Peer: peer,
		Arrived: clock.Add(-1 * time.Second), Deadline: clock.Add(3 * time.Second)}
	call3 := &answer.Call{ID: 3, Method: chat, Metadata: transport(), Peer: peer, Arrived: clock}
	return []tea.Msg{
		answer.ArrivedMsg{Call: call1},
		answer.ReceivedMsg{ID: 1, Msg: req},
		answer.HalfClosedMsg{ID: 1},
		answer.ArrivedMsg{Call: call2},
		answer.ReceivedMsg{ID: 2, Msg: req},
		answer.HalfClosedMsg{ID: 2},
		answer.ArrivedMsg{Call: call3},
		answer.ReceivedMsg{ID: 3, Msg: message(t, chat.Input(), `{"from": "ada", "text": "hello"}`)},
	}, call1
}

func newAnswerModel(t *testing.T, opts answer.Options, withForward bool) AnswerModel {
	src := tuitest.Corpus(t)
	cfg := AnswerConfig{Responder: answer.NewResponder(opts), Resolver: src.Types(),
		Title: "connected to 127.0.0.1:9000", Now: fixedNow}
	if withForward {
		cfg.Forward = &forward.Config{Source: src, Invoker: forward.ConnInvoker(nil), Target: "127.0.0.1:9000", Now: fixedNow}
	}
	m := NewAnswerModel(cfg)
	if withForward {
		// Load the methods as the program would (a FileSource does no I/O).
		var model tea.Model = m
		model, _ = model.Update(m.fwd.Init()())
		m = model.(AnswerModel)
	}
	return m
}

func TestAnswerGolden(t *testing.T) {
	events, vote1 := goldenCalls(t)
	vote := vote1.Method
	commit := message(t, vote.Output(), `{"state": "COMMIT"}`)
	invalid := vote1.Reply(`{"state": "MAYBE"}`)() // fails before it reaches the call

	tests := []struct {
		name          string
		width, height int
		forward       bool
		script        bool
		bytes         dynamic.BytesMode
		msgs          []tea.Msg
	}{
		{name: "empty", width: 100, height: 24, forward: true},
		// --bytes text: the vote's reference_updates_hash reads "abc", not "YWJj".
		{name: "bytes-text", width: 120, height: 32, bytes: dynamic.BytesText, msgs: events},
		{name: "pending", width: 120, height: 32, forward: true, msgs: events},
		{name: "narrow", width: 80, height: 24, forward: true, msgs: events},
		// Item 8: every key fits at 80 columns (the groups wrap), the line
		// keeps "? help" and "q quit", and the title keeps the tabs.
		{name: "help-narrow", width: 80, height: 24, forward: true, msgs: append(append([]tea.Msg{}, events...), runes("?"))},
		{name: "forward-narrow", width: 80, height: 24, forward: true, msgs: append(append([]tea.Msg{}, events...), keyF2)},
		{name: "invalid-reply", width: 120, height: 32, msgs: append(append([]tea.Msg{}, events...), keyEnter, invalid)},
		{name: "error-form", width: 120, height: 32, msgs: append(append([]tea.Msg{}, events...),
			runes("e"), keyTab, runes("n"), runes("o"), runes(" "), runes("q"), runes("u"), runes("o"), runes("r"), runes("u"), runes("m"))},
		{name: "answered", width: 120, height: 32, msgs: append(append([]tea.Msg{}, events...),
			answer.SentMsg{ID: 1, Msg: commit, By: answer.Person},
			answer.EndedMsg{ID: 1, State: answer.Answered, Status: status.New(codes.OK, "")},
			answer.EndedMsg{ID: 2, State: answer.Expired, Status: status.New(codes.DeadlineExceeded, "the call's deadline passed before it was answered")})},
		{name: "script-match", width: 120, height: 32, script: true, msgs: append(append([]tea.Msg{}, events...),
			answer.MatchMsg{ID: 1, Rule: `"vote" (answer.yaml:2)`}, runes("?"))},
		// Item 5: the request comes first; the transport headers fold
		// behind t.
		{name: "transport-shown", width: 120, height: 44, msgs: append(append([]tea.Msg{}, events...), runes("t"))},
		// Item 6: an ended call shows what was sent and how it ended in
		// place of the reply template.
		{name: "outcome", width: 120, height: 32, msgs: append(append([]tea.Msg{}, events...),
			answer.SentMsg{ID: 1, Msg: commit, By: answer.Person},
			answer.EndedMsg{ID: 1, State: answer.Answered, Status: status.New(codes.OK, "")},
			answer.EndedMsg{ID: 2, State: answer.Answered, Status: errorStatus(t)},
			runes("g"), runes("j"), keyTab, keyTab)},
		// Item 7: a long error is wrapped, not cut.
		{name: "error-details", width: 120, height: 32, msgs: append(append([]tea.Msg{}, events...),
			runes("e"), keyTab, keyTab, detailsError(t))},
		// Item 10: once the script has answered, nothing says it "would".
		{name: "script-answered", width: 120, height: 32, script: true, msgs: append(append([]tea.Msg{}, events...),
			answer.MatchMsg{ID: 1, Rule: `"vote" (answer.yaml:2)`},
			answer.DelegatedMsg{ID: 1},
			answer.SentMsg{ID: 1, Msg: commit, By: answer.Script},
			answer.EndedMsg{ID: 1, State: answer.Scripted, Status: status.New(codes.OK, ""), Header: metadata.Pairs("x-voter", "script")},
			runes("g"))},
		// Item 14: the server went away; the calls it left waiting say
		// so, and the queue stays to be read.
		{name: "lost", width: 120, height: 32, msgs: append(append([]tea.Msg{}, events...),
			answer.SentMsg{ID: 1, Msg: commit, By: answer.Person},
			answer.EndedMsg{ID: 1, State: answer.Answered, Status: status.New(codes.OK, "")},
			answer.EndedMsg{ID: 2, State: answer.Lost, Status: status.New(codes.Unavailable, "the server at 127.0.0.1:9000 closed the connection before this call was answered")},
			answer.EndedMsg{ID: 3, State: answer.Lost, Status: status.New(codes.Unavailable, "the server at 127.0.0.1:9000 closed the connection before this call was answered")},
			answer.LostMsg{Cause: errors.New("the server at 127.0.0.1:9000 closed the connection")},
			runes("g"), runes("j"))},
		{name: "stream", width: 120, height: 32, msgs: append(append([]tea.Msg{}, events...),
			answer.EndedMsg{ID: 1, State: answer.Scripted, Status: status.New(codes.OK, "")},
			answer.EndedMsg{ID: 2, State: answer.Answered, Status: status.New(codes.Aborted, "no quorum")},
			answer.SentMsg{ID: 3, Msg: message(t, tuitest.Method(t, "acme.Users/Chat").Output(), `{"from": "bcctl", "text": "hi ada"}`), By: answer.Person})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := answer.Options{}
			if tt.script {
				opts.Script = tuitest.DownstreamEngine(t, "backchannel:\n  - name: vote\n    match: {method: gitaly.RefTransaction/VoteTransaction}\n    reply: {state: COMMIT}\n", nil)
			}
			m := newAnswerModel(t, opts, tt.forward)
			m.cfg.Bytes = tt.bytes
			_, s := screen(t, m, tt.width, tt.height, tt.msgs...)
			golden.RequireEqual(t, []byte(s))
		})
	}
}

// errorStatus is an ABORTED status with an ErrorInfo detail.
func errorStatus(t *testing.T) *status.Status {
	st, err := answer.BuildStatus(codes.Aborted, "no quorum: 2 of 3 voters said ABORT",
		`{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "NO_QUORUM", "domain": "gitaly.example", "metadata": {"votes": "1/3"}}`, nil)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// detailsError is the outcome of sending an error whose details name a
// type nobody knows.
func detailsError(t *testing.T) tea.Msg {
	_, err := answer.BuildStatus(codes.Aborted, "", `{"@type": "type.googleapis.com/google.rpc.NoSuchDetail", "reason": "FROZEN"}`, nil)
	if err == nil {
		t.Fatal("details of an unknown type were accepted")
	}
	return answer.ResultMsg{ID: 1, Action: answer.ActionFail, Err: err}
}

// picked is what the picker's enter key yields (the Cmd is not run here).
func picked(md protoreflect.MethodDescriptor) tea.Msg { return picker.PickedMsg{Method: md} }

func TestForwardGolden(t *testing.T) {
	getUser := tuitest.Method(t, "acme.Users/Get")
	list := tuitest.Method(t, "acme.Users/List")
	chat := tuitest.Method(t, "acme.Users/Chat")
	user := func(id, name string) proto.Message {
		return message(t, list.Output(), `{"id": "`+id+`", "name": "`+name+`", "role": "ROLE_ADMIN"}`)
	}
	tests := []struct {
		name string
		msgs []tea.Msg
	}{
		{"picker", []tea.Msg{keyF2}},
		{"filtered", seq([]tea.Msg{keyF2}, typed("vote"))},
		{"request", seq([]tea.Msg{keyF2}, typed("users/get"), []tea.Msg{keyEnter, picked(getUser)})},
		{"response", seq([]tea.Msg{keyF2}, typed("users/get"), []tea.Msg{keyEnter, picked(getUser), keySend,
			forward.StartedMsg{Run: 1},
			forward.HeaderMsg{Run: 1, MD: metadata.Pairs("x-served-by", "upstream")},
			forward.ResponseMsg{Run: 1, Msg: message(t, getUser.Output(), `{"id": "7", "name": "user 7"}`)},
			forward.TrailerMsg{Run: 1, Status: status.New(codes.OK, ""), MD: metadata.Pairs("x-trailer", "done"), Elapsed: 3 * time.Millisecond},
		})},
		{"streaming", seq([]tea.Msg{keyF2}, typed("userslist"), []tea.Msg{keyEnter, picked(list), keySend,
			forward.StartedMsg{Run: 1},
			forward.HeaderMsg{Run: 1, MD: metadata.MD{}},
			forward.ResponseMsg{Run: 1, Msg: user("1", "ada")},
			forward.ResponseMsg{Run: 1, Msg: user("2", "grace")},
		})},
		{"failed", seq([]tea.Msg{keyF2}, typed("users/get"), []tea.Msg{keyEnter, picked(getUser), keySend,
			forward.TrailerMsg{Run: 1, Status: status.New(codes.NotFound, `no user "7"`), Elapsed: time.Millisecond},
		})},
		// Item 12: a bidi stream stays open; what was sent and what came
		// back show in order.
		{"bidi", seq([]tea.Msg{keyF2}, typed("userschat"), []tea.Msg{keyEnter, picked(chat), keySend,
			forward.StartedMsg{Run: 1},
			forward.SentMsg{Run: 1, Msg: message(t, chat.Input(), `{"text": "one"}`)},
			forward.HeaderMsg{Run: 1, MD: metadata.MD{}},
			forward.ResponseMsg{Run: 1, Msg: message(t, chat.Output(), `{"from": "upstream", "text": "echo one"}`)},
			forward.SentMsg{Run: 1, Msg: message(t, chat.Input(), `{"text": "two"}`)},
			forward.ResponseMsg{Run: 1, Msg: message(t, chat.Output(), `{"from": "upstream", "text": "echo two"}`)},
		})},
		// Item 11: the calls made, newest first, the one shown selected;
		// a second call in flight did not hide the first.
		{"history", seq([]tea.Msg{keyF2}, typed("users/get"), []tea.Msg{keyEnter, picked(getUser), keySend,
			forward.TrailerMsg{Run: 1, Status: status.New(codes.NotFound, `no user "7"`), Elapsed: time.Millisecond},
			keySend, forward.StartedMsg{Run: 2},
			keyCtrlL}, typed("userslist"), []tea.Msg{keyEnter, picked(list), keySend,
			forward.ResponseMsg{Run: 3, Msg: user("1", "ada")},
			forward.TrailerMsg{Run: 3, Status: status.New(codes.OK, ""), Elapsed: 4 * time.Millisecond},
			tea.KeyMsg{Type: tea.KeyCtrlR},
		})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, s := screen(t, newAnswerModel(t, answer.Options{}, true), 120, 30, tt.msgs...)
			golden.RequireEqual(t, []byte(s))
		})
	}
}
