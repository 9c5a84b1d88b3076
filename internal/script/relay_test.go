package script

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/dynamic"
)

// fakeRelayer answers like a callee: it reads every request, sends a
// header, its responses and a trailer, and ends with st.
type fakeRelayer struct {
	t         *testing.T
	responses []string
	st        *status.Status
	got       []string // the requests it relayed, as JSON
	calls     int
}

func (f *fakeRelayer) Relay(call dynamic.Call) error {
	f.calls++
	for {
		m, err := call.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		f.got = append(f.got, toJSON(f.t, m))
	}
	if err := call.SendHeader(metadata.Pairs("x-callee", "yes")); err != nil {
		return err
	}
	for _, r := range f.responses {
		if err := call.Send(msg(f.t, call.Method().Output(), r)); err != nil {
			return err
		}
	}
	call.SetTrailer(metadata.Pairs("x-callee-trailer", "yes"))
	return f.st.Err()
}

// ruleRecorder is a fakeCall that records the rule it is told of.
type ruleRecorder struct {
	*fakeCall
	rule calls.RuleRef
}

func (r *ruleRecorder) RuleChosen(rule calls.RuleRef) { r.rule = rule }

func parseRelay(t *testing.T, src string) (*Script, error) {
	t.Helper()
	return Parse(context.Background(), "tamper.yaml", []byte(src), Config{Upstream: loadTestSchema(t), Relay: true})
}

// TestRelay: in bcctl proxy, rules pass calls on to their callee, change
// the answer, or answer themselves; calls no rule matches are relayed.
func TestRelay(t *testing.T) {
	const src = `
rules:
  - name: second-fails
    match: {method: acme.Users/Get, request: {id: "2"}}
    relay: {fail: {code: ABORTED, message: "tampered ${req.id}"}}
  - name: renamed
    match: {method: acme.Users/Get, request: {id: "3"}}
    headers: {x-tampered: "yes"}
    relay: {reply: {name: "not ${req.id}"}}
  - name: passed
    match: {method: acme.Users/Get}
    relay: {}
  - name: answered
    match: {method: acme.Users/Delete}
    fail: {code: PERMISSION_DENIED}
`
	sc, err := parseRelay(t, src)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, method, req, rule string
		wantCode                codes.Code
		wantSent                []string
		wantRelayed             bool
		wantHeader              []string
	}{
		{"relayed", "acme.Users/Get", `{"id":"1"}`, "passed", codes.OK, []string{`{"id":"1","name":"ann"}`}, true, []string{"yes"}},
		{"fail after relay", "acme.Users/Get", `{"id":"2"}`, "second-fails", codes.Aborted, nil, true, nil},
		{"reply changed", "acme.Users/Get", `{"id":"3"}`, "renamed", codes.OK, []string{`{"id":"1","name":"not 3"}`}, true, []string{"yes"}},
		{"answered by the rule", "acme.Users/Delete", `{"id":"4"}`, "answered", codes.PermissionDenied, nil, false, nil},
		{"no rule: relayed", "acme.Users/Create", `{"user":{"name":"x"}}`, "", codes.OK, []string{`{"id":"1","name":"ann"}`}, true, []string{"yes"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			relayer := &fakeRelayer{t: t, responses: []string{`{"id":"1","name":"ann"}`}, st: status.New(codes.OK, "")}
			e := NewEngine(sc, Upstream, Options{Relayer: relayer})
			call := &ruleRecorder{fakeCall: newCall(t, tc.method, nil, tc.req)}
			err := e.Respond(call)
			if got := status.Code(err); got != tc.wantCode {
				t.Fatalf("status: got %v, want %v", err, tc.wantCode)
			}
			if got := call.sentJSON(t); strings.Join(got, "|") != strings.Join(tc.wantSent, "|") {
				t.Errorf("sent %v, want %v", got, tc.wantSent)
			}
			if (relayer.calls == 1) != tc.wantRelayed || tc.wantRelayed && (len(relayer.got) != 1 || relayer.got[0] != toJSON(t, msg(t, call.method.Input(), tc.req))) {
				t.Errorf("relayed %d times, requests %v; want relayed %v with %s", relayer.calls, relayer.got, tc.wantRelayed, tc.req)
			}
			if call.rule.Name != tc.rule {
				t.Errorf("rule told: %q, want %q", call.rule.Name, tc.rule)
			}
			if got := call.header.Get("x-callee"); strings.Join(got, ",") != strings.Join(tc.wantHeader, ",") {
				t.Errorf("header x-callee %v, want %v", got, tc.wantHeader)
			}
		})
	}
	if got := status.Convert(func() error {
		e := NewEngine(sc, Upstream, Options{Relayer: &fakeRelayer{t: t, st: status.New(codes.OK, "")}})
		return e.Respond(newCall(t, "acme.Users/Get", nil, `{"id":"2"}`))
	}()).Message(); got != "tampered 2" {
		t.Errorf("relay.fail message: got %q", got)
	}
}

// TestRelayNeedsProxy: relay loads only for bcctl proxy, and never with
// each, end or another answer.
func TestRelayNeedsProxy(t *testing.T) {
	if got := parseErr(t, "rules:\n  - match: {method: acme.Users/Get}\n    relay: {}\n"); !strings.Contains(got, "rules[0].relay: only bcctl proxy relays calls") {
		t.Errorf("without Config.Relay: got %q", got)
	}
	for _, tc := range []struct{ src, want string }{
		{"rules:\n  - match: {method: acme.Users/Get}\n    relay: {}\n    reply: {}\n", "give one of reply, stream, fail and relay"},
		{"rules:\n  - match: {method: acme.Users/Import}\n    each: [{sleep: 1ms}]\n    relay: {}\n", "each and end have none to read"},
		{"rules:\n  - match: {method: acme.Users/Get}\n    relay: {reply: {}, fail: {code: ABORTED}}\n", "not both"},
		{"rules:\n  - match: {method: acme.Users/Get}\n    relay: {reply: {nope: 1}}\n", "nope"},
	} {
		_, err := parseRelay(t, tc.src)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want an error containing %q", tc.src, err, tc.want)
		}
	}
	// Without a Relayer (a script loaded for the proxy run by something
	// else), a relay rule says so.
	sc, err := parseRelay(t, "rules:\n  - match: {method: acme.Users/Get}\n    relay: {}\n")
	if err != nil {
		t.Fatal(err)
	}
	err = NewEngine(sc, Upstream, Options{}).Respond(newCall(t, "acme.Users/Get", nil, `{"id":"1"}`))
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("relay without a Relayer: got %v", err)
	}
}

// lateRelayer passes a call on and leaves its request pump waiting for
// the caller, as the proxy's relay does when the callee answers first.
type lateRelayer struct {
	done chan struct{}
}

func (r *lateRelayer) Relay(call dynamic.Call) error {
	go func() {
		defer close(r.done)
		for {
			if _, err := call.Recv(); err != nil {
				return
			}
		}
	}()
	return nil
}

// TestRelayReceivesAfterTheAnswer: the requests a relay receives after the
// call has its answer do not race with the engine's record of the call.
func TestRelayReceivesAfterTheAnswer(t *testing.T) {
	sc, err := parseRelay(t, "rules:\n  - match: {method: acme.Users/Chat}\n    relay: {}\n")
	if err != nil {
		t.Fatal(err)
	}
	var evs events
	relayer := &lateRelayer{done: make(chan struct{})}
	e := NewEngine(sc, Upstream, Options{Relayer: relayer, Observer: &evs})
	call := newCall(t, "acme.Users/Chat", nil)
	call.recvs = make(chan proto.Message)
	late := msg(t, call.method.Input(), `{"text": "late"}`)
	// The caller's message comes as it does from a transport: ordered by
	// nothing with the engine's goroutine.
	go func() {
		call.recvs <- late
		close(call.recvs)
	}()
	if err := e.Respond(call); err != nil {
		t.Fatal(err)
	}
	<-relayer.done
	if got := len(evs.all()); got != 1 {
		t.Errorf("%d events, want 1", got)
	}
}

// numberedCall is a call that arrives with its ID, as bcctl proxy's do.
type numberedCall struct {
	*fakeCall
	id uint64
}

func (c numberedCall) CallID() uint64 { return c.id }

// TestNumberedCallNamesItsSteps: a Numbered call is reported under its own
// ID, the calls its steps make are numbered by Options.NewID and name it
// as their cause, so the events fit a journal numbered elsewhere.
func TestNumberedCallNamesItsSteps(t *testing.T) {
	sc := loadTestSchema(t)
	var ev events
	down := NewEngine(parse(t, `
backchannel:
  - match: {method: gitaly.RefTransaction/VoteTransaction}
    reply: {state: COMMIT}
`), Downstream, Options{})
	next := uint64(100)
	up := NewEngine(parse(t, voteUpstream), Upstream, Options{
		Observer: &ev,
		NewID:    func() uint64 { next++; return next },
		Caller: CallerFunc(func(_ context.Context, from calls.Peer, _ string) ([]Target, error) {
			return []Target{{Peer: from, Conn: &engineConn{engine: down, schema: sc}}}, nil
		}),
	})
	c := numberedCall{newCall(t, "gitaly.OperationService/UserCreateBranch", transaction(`{"id": 1}`), `{"branch_name": "ZmVhdHVyZS94"}`), 42}
	if err := up.Respond(c); err != nil {
		t.Fatalf("Respond: %v", err)
	}
	all := ev.all()
	if len(all) != 2 {
		t.Fatalf("got %d events, want the vote made and the call answered", len(all))
	}
	made, answered := all[0], all[1]
	if made.Origin != calls.Made || made.ID != 101 || made.Cause != 42 {
		t.Errorf("made call: origin %v, ID %d, cause %d; want made, 101 (from NewID), 42 (the call's)", made.Origin, made.ID, made.Cause)
	}
	if answered.Origin != calls.Answered || answered.ID != 42 {
		t.Errorf("answered call: origin %v, ID %d; want answered, 42", answered.Origin, answered.ID)
	}
}
