package script

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/bcctl/bcctl/internal/calls"
)

// answer runs one call through an upstream engine of src and returns the
// replies (as JSON) and the status.
func answer(t *testing.T, e *Engine, c *fakeCall) ([]string, *status.Status) {
	t.Helper()
	err := e.Respond(c)
	return c.sentJSON(t), status.Convert(err)
}

func TestRespondUnary(t *testing.T) {
	s := parse(t, `
vars: {prefix: "user"}
rules:
  - match: {method: acme.Users/Get}
    times: 2
    fail: {code: UNAVAILABLE, message: "attempt ${n}"}
  - match: {method: acme.Users/Get, request: {id: {glob: "admin-*"}}}
    reply: {id: "${req.id}", name: "admin ${req.id}", role: ROLE_ADMIN}
  - match: {method: acme.Users/Get}
    headers: {x-served-by: bcctl}
    trailers: {x-count: "${n}"}
    reply:
      id: "${req.id}"
      name: "${vars.prefix} ${req.id} (peer ${peer.id})"
      role: "${meta.x-role}"
      groups: ["${meta.x-team}", "n${n}", "${peer.id}"]
      scores: {1: {points: "${n}"}}
`)
	e := NewEngine(s, Upstream, Options{})
	for i, want := range []string{"attempt 1", "attempt 2"} {
		_, st := answer(t, e, newCall(t, "acme.Users/Get", nil, `{"id": "1"}`))
		if st.Code() != codes.Unavailable || st.Message() != want {
			t.Fatalf("call %d: got %v, want UNAVAILABLE %q", i, st, want)
		}
	}
	got, st := answer(t, e, newCall(t, "acme.Users/Get", nil, `{"id": "admin-7"}`))
	if st.Code() != codes.OK || len(got) != 1 || got[0] != `{"id":"admin-7","name":"admin admin-7","role":"ROLE_ADMIN"}` {
		t.Fatalf("admin id: got %v %v", got, st)
	}
	c := newCall(t, "acme.Users/Get", metadata.Pairs("x-team", "core", "x-role", "ROLE_WRITER"), `{"id": "5"}`)
	got, st = answer(t, e, c)
	want := `{"groups":["core","n1","7"],"id":"5","name":"user 5 (peer 7)","role":"ROLE_WRITER","scores":{"1":{"points":"1"}}}`
	if st.Code() != codes.OK || len(got) != 1 || got[0] != want {
		t.Fatalf("templated reply: got %v %v, want %s", got, st, want)
	}
	if v := c.header.Get("x-served-by"); len(v) != 1 || v[0] != "bcctl" {
		t.Errorf("header: got %v", c.header)
	}
	if v := c.trailer.Get("x-count"); len(v) != 1 || v[0] != "1" {
		t.Errorf("trailer: got %v", c.trailer)
	}
}

func TestRespondTemplateKeepsType(t *testing.T) {
	s := parse(t, `
rules:
  - match: {method: acme.Users/Import}
    end:
      - reply: {imported: "${i}", skipped_ids: ["${reqs.0.id}", "${req.id}"]}
  - match: {method: acme.Users/List}
    reply:
      attributes: {whole: "${req}", num: "${req.limit}", text: "n=${req.limit}", role: "${req.role}"}
`)
	e := NewEngine(s, Upstream, Options{})
	// Fields that are not set read as their defaults, with their types.
	for req, want := range map[string]string{
		`{"limit": 4}`:           `{"attributes":{"num":4,"role":"ROLE_UNSPECIFIED","text":"n=4","whole":{"limit":4}}}`,
		`{"role": "ROLE_ADMIN"}`: `{"attributes":{"num":0,"role":"ROLE_ADMIN","text":"n=0","whole":{"role":"ROLE_ADMIN"}}}`,
	} {
		got, st := answer(t, e, newCall(t, "acme.Users/List", nil, req))
		if st.Code() != codes.OK || len(got) != 1 || got[0] != want {
			t.Fatalf("list %s: got %v %v, want %s", req, got, st, want)
		}
	}
	got, st := answer(t, e, newCall(t, "acme.Users/Import", nil, `{"id": "1"}`, `{"id": "2"}`, `{"id": "9"}`))
	want := `{"imported":2,"skipped_ids":["1","9"]}`
	if st.Code() != codes.OK || len(got) != 1 || got[0] != want {
		t.Fatalf("import: got %v %v, want %s", got, st, want)
	}
}

// TestRespondBytesAsText checks that bytes fields match and interpolate as
// their UTF-8 text, copy exactly into another bytes field, and take UTF-8
// text or !!binary in replies.
func TestRespondBytesAsText(t *testing.T) {
	s := parse(t, `
rules:
  - match: {method: gitaly.RefTransaction/VoteTransaction, request: {reference_updates_hash: {re: "^feature/"}}}
    fail: {code: FAILED_PRECONDITION, message: "hash ${req.reference_updates_hash} from ${req.node}"}
  - match: {method: acme.Users/Chat, request: {attachment: main}}
    each:
      - send: {text: "got ${req.attachment}", attachment: "${req.attachment}"}
  - match: {method: acme.Users/List}
    stream:
      - {name: main, avatar: refs/heads/main}
      - {name: raw, avatar: !!binary "AP8="}
`)
	e := NewEngine(s, Upstream, Options{})
	_, st := answer(t, e, newCall(t, "gitaly.RefTransaction/VoteTransaction", nil, `{"reference_updates_hash": "ZmVhdHVyZS94", "node": "gitaly-1"}`))
	if st.Code() != codes.FailedPrecondition || st.Message() != "hash feature/x from gitaly-1" {
		t.Fatalf("got %v", st)
	}
	got, st := answer(t, e, newCall(t, "acme.Users/Chat", nil, `{"attachment": "bWFpbg=="}`, `{"attachment": "AP8="}`))
	want := []string{`{"attachment":"bWFpbg==","text":"got main"}`, `{"attachment":"AP8=","text":"got AP8="}`}
	if st.Code() != codes.OK || strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("chat: got %v %v, want %v", got, st, want)
	}
	got, st = answer(t, e, newCall(t, "acme.Users/List", nil, `{}`))
	want = []string{`{"avatar":"cmVmcy9oZWFkcy9tYWlu","name":"main"}`, `{"avatar":"AP8=","name":"raw"}`}
	if st.Code() != codes.OK || strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("stream: got %v %v, want %v", got, st, want)
	}
}

func TestRespondUnmatchedNamesClosestRule(t *testing.T) {
	s := parse(t, `
rules:
  - name: other
    match: {method: acme.Users/List}
    stream: []
  - name: vote-before-branch
    match:
      method: gitaly.OperationService/UserCreateBranch
      request: {branch_name: {re: "^feature/"}}
    reply: {}
  - name: needs-meta
    match:
      method: acme.Users/Get
      metadata: {gitaly-reference-transaction: {exists: true}}
    reply: {}
  - name: once
    match: {method: gitaly.RefTransaction/StopTransaction}
    times: 1
    reply: {}
`)
	e := NewEngine(s, Upstream, Options{})
	tests := []struct {
		method, req string
		want        string
	}{
		{"gitaly.OperationService/UserCreateBranch", `{"branch_name": "bWFpbg=="}`,
			`no rule matched gitaly.OperationService/UserCreateBranch; closest: "vote-before-branch" (test.yaml:6): request.branch_name "main" does not match re "^feature/"`},
		{"acme.Users/Get", `{}`,
			`no rule matched acme.Users/Get; closest: "needs-meta" (test.yaml:11): metadata gitaly-reference-transaction is missing`},
		{"gitaly.RefTransaction/StopTransaction", `{}`, ""},
		{"gitaly.RefTransaction/StopTransaction", `{}`,
			`no rule matched gitaly.RefTransaction/StopTransaction; closest: "once" (test.yaml:16): it has retired after answering 1 call (times: 1)`},
		{"acme.Users/Import", "",
			`no rule matched acme.Users/Import; closest: "other" (test.yaml:3): method is acme.Users/Import, not acme.Users/List`},
	}
	for _, tt := range tests {
		var c *fakeCall
		if tt.req == "" {
			c = newCall(t, tt.method, nil)
		} else {
			c = newCall(t, tt.method, nil, tt.req)
		}
		_, st := answer(t, e, c)
		if tt.want == "" {
			if st.Code() != codes.OK {
				t.Errorf("%s: got %v, want OK", tt.method, st)
			}
			continue
		}
		if st.Code() != codes.Unimplemented || st.Message() != tt.want {
			t.Errorf("%s:\n got %v\nwant UNIMPLEMENTED %s", tt.method, st, tt.want)
		}
	}
}

func TestRespondMatchers(t *testing.T) {
	s := parse(t, `
rules:
  - name: glob
    match: {method: acme.Users/Get, request: {id: {glob: "t-*-x"}}}
    reply: {name: glob}
  - name: one-of
    match: {method: acme.Users/Get, request: {id: {one_of: [ann, {re: "^bo"}]}}}
    reply: {name: one-of}
  - name: not
    match: {method: acme.Users/Get, request: {id: {not: {re: "^skip"}, exists: true, contains: "-"}}}
    reply: {name: not}
  - name: default
    match: {method: acme.Users/Get, request: {id: {eq: "", exists: false}}}
    reply: {name: default}
  - name: exact
    match: {method: acme.Users/List, request: {role: ROLE_ADMIN}, exact: true}
    stream: [{name: exact}]
  - name: enum
    match: {method: acme.Users/List, request: {role: 3}}
    stream: [{name: admins}]
  - name: numbers
    match: {method: acme.Users/List, request: {limit: {one_of: [6, 7]}}}
    stream: [{name: numbers}]
  - name: range
    match: {method: acme.Users/List, request: {role: ROLE_READER, limit: {gt: 10, le: 20}}}
    stream: [{name: range}]
  - name: enum-name
    match: {method: acme.Users/List, request: {role: ROLE_UNSPECIFIED, limit: {lt: 5}}}
    stream: [{name: unspecified}]
  - name: list
    match: {method: acme.Users/Import, request: {groups: {contains: admin, len: {ge: 2}}}}
    end: [{reply: {imported: 1}}]
  - name: list-exact
    match: {method: acme.Users/Import, request: {groups: [a, {re: "^b"}], labels: {team: core}}}
    end: [{reply: {imported: 2}}]
  - name: struct
    match: {method: acme.Users/Import, request: {attributes: {kind: {one_of: [x, y]}, n: 2}}}
    end: [{reply: {imported: 3}}]
  - name: oneof-and-any
    match: {method: acme.Users/Import, request: {email: {glob: "*@example.com"}, extra: {city: Berlin}}}
    end: [{reply: {imported: 4}}]
  - name: int64-in-map
    match: {method: acme.Users/Import, request: {scores: {7: {points: {ge: 10, le: 9007199254740993}}}}}
    end: [{reply: {imported: 5}}]
  - name: uint64-default
    match: {method: gitaly.RefTransaction/VoteTransaction, request: {transaction_id: 0, node: {exists: false}}}
    reply: {state: ABORT}
  - name: uint64-set
    match: {method: gitaly.RefTransaction/VoteTransaction, request: {transaction_id: {one_of: ["18446744073709551615", 5]}}}
    reply: {state: STOP}
`)
	e := NewEngine(s, Upstream, Options{})
	tests := []struct {
		method, req, want string
	}{
		{"acme.Users/Get", `{"id": "t-123-x"}`, `{"name":"glob"}`},
		{"acme.Users/Get", `{"id": "bob"}`, `{"name":"one-of"}`},
		{"acme.Users/Get", `{"id": "keep-me"}`, `{"name":"not"}`},
		{"acme.Users/Get", `{}`, `{"name":"default"}`},
		{"acme.Users/List", `{"role": "ROLE_ADMIN"}`, `{"name":"exact"}`},
		{"acme.Users/List", `{"role": "ROLE_ADMIN", "limit": 3}`, `{"name":"admins"}`},
		{"acme.Users/List", `{"limit": 7}`, `{"name":"numbers"}`},
		{"acme.Users/List", `{"role": "ROLE_READER", "limit": 15}`, `{"name":"range"}`},
		{"acme.Users/List", `{"limit": 4}`, `{"name":"unspecified"}`},
		{"acme.Users/Import", `{"groups": ["x", "admin"]}`, `{"imported":1}`},
		{"acme.Users/Import", `{"groups": ["a", "bee"], "labels": {"team": "core", "x": "y"}}`, `{"imported":2}`},
		{"acme.Users/Import", `{"attributes": {"kind": "y", "n": 2.0, "more": true}}`, `{"imported":3}`},
		{"acme.Users/Import", `{"email": "ann@example.com", "extra": {"@type": "type.googleapis.com/acme.Address", "city": "Berlin", "country": "DE"}}`, `{"imported":4}`},
		{"acme.Users/Import", `{"scores": {"7": {"points": "9007199254740993"}, "8": {}}}`, `{"imported":5}`},
		{"gitaly.RefTransaction/VoteTransaction", `{}`, `{"state":"ABORT"}`},
		{"gitaly.RefTransaction/VoteTransaction", `{"transaction_id": "18446744073709551615"}`, `{"state":"STOP"}`},
		{"gitaly.RefTransaction/VoteTransaction", `{"transaction_id": 5, "node": "n1"}`, `{"state":"STOP"}`},
	}
	for _, tt := range tests {
		got, st := answer(t, e, newCall(t, tt.method, nil, tt.req))
		if st.Code() != codes.OK || len(got) != 1 || got[0] != tt.want {
			t.Errorf("%s %s: got %v %v, want %s", tt.method, tt.req, got, st, tt.want)
		}
	}
	misses := []struct{ method, req, why string }{
		{"acme.Users/Get", `{"id": "skip-me"}`, `closest: "not" (test.yaml:9): request.id is "skip-me", which the ` + "`not`" + ` matcher excludes`},
		{"acme.Users/Import", `{"groups": ["a", "c"], "labels": {"team": "core"}}`, `closest: "list-exact" (test.yaml:33): request.groups[1] "c" does not match re "^b"`},
		{"acme.Users/List", `{"limit": 9}`, `closest: "enum-name" (test.yaml:27): request.limit is 9, want lt 5`},
		{"acme.Users/List", `{"role": "ROLE_READER", "limit": 9}`, `closest: "range" (test.yaml:24): request.limit is 9, want gt 10`},
		{"acme.Users/Import", `{"scores": {"7": {"points": "9007199254740994"}}}`, `closest: "int64-in-map" (test.yaml:42): request.scores.7.points is 9007199254740994, want le 9007199254740993`},
		{"gitaly.RefTransaction/VoteTransaction", `{"transaction_id": "6"}`, `closest: "uint64-default" (test.yaml:45): request.transaction_id is 6, want 0`},
		{"acme.Users/Import", `{"phone": "+49", "extra": {"@type": "type.googleapis.com/acme.Address", "city": "Berlin"}}`, `closest: "oneof-and-any" (test.yaml:39): request.email "" does not match glob "*@example.com"`},
	}
	for _, m := range misses {
		_, st := answer(t, e, newCall(t, m.method, nil, m.req))
		if st.Code() != codes.Unimplemented || !strings.Contains(st.Message(), m.why) {
			t.Errorf("%s %s: got %v, want UNIMPLEMENTED containing %q", m.method, m.req, st, m.why)
		}
	}
}

func TestRespondFailWithDetails(t *testing.T) {
	s := parse(t, `
rules:
  - match: {method: acme.Users/Get}
    trailers: {x-rule: limited}
    fail:
      code: 8
      message: "slow down, ${meta.user}"
      details:
        - {"@type": google.rpc.RetryInfo, retry_delay: 1.5s}
        - {"@type": type.googleapis.com/google.rpc.ErrorInfo, reason: QUOTA, metadata: {user: "${meta.user}"}}
        - {"@type": acme.UserConflict, existing_id: "${req.id}", field: name}
      trailers: {x-retry: "yes"}
`)
	e := NewEngine(s, Upstream, Options{})
	c := newCall(t, "acme.Users/Get", metadata.Pairs("user", "ann"), `{"id": "4"}`)
	_, st := answer(t, e, c)
	if st.Code() != codes.ResourceExhausted || st.Message() != "slow down, ann" {
		t.Fatalf("got %v", st)
	}
	details := st.Proto().GetDetails()
	if len(details) != 3 {
		t.Fatalf("details: got %d, want 3", len(details))
	}
	var ri errdetails.RetryInfo
	if err := details[0].UnmarshalTo(&ri); err != nil || ri.GetRetryDelay().AsDuration() != 1500*time.Millisecond {
		t.Errorf("RetryInfo: %v %v", &ri, err)
	}
	var ei errdetails.ErrorInfo
	if err := details[1].UnmarshalTo(&ei); err != nil || ei.GetReason() != "QUOTA" || ei.GetMetadata()["user"] != "ann" {
		t.Errorf("ErrorInfo: %v %v", &ei, err)
	}
	if got := details[2].GetTypeUrl(); got != "type.googleapis.com/acme.UserConflict" {
		t.Errorf("detail 3 type: %s", got)
	}
	conflict := dynamicpb.NewMessage(loadTestSchema(t).message(t, "acme.UserConflict"))
	if err := details[2].UnmarshalTo(conflict); err != nil || toJSON(t, conflict) != `{"existing_id":"4","field":"name"}` {
		t.Errorf("UserConflict: %v %v", conflict, err)
	}
	if c.trailer.Get("x-retry")[0] != "yes" || c.trailer.Get("x-rule")[0] != "limited" {
		t.Errorf("trailers: %v", c.trailer)
	}
}

func TestRespondStreams(t *testing.T) {
	s := parse(t, `
rules:
  - match: {method: acme.Users/Chat, request: {text: hello}}
    do:
      - send: {from: bot, text: "welcome ${req.from}"}
    each:
      - send: {from: "bot-${i}", text: "#${i}: ${req.text}"}
    end:
      - send: {from: bot, text: "bye after ${reqs.0.text}"}
  - match: {method: acme.Users/Chat}
    do:
      - send: {from: bot, text: "I speak first"}
    each:
      - fail: {code: INVALID_ARGUMENT, message: "no ${req.text}"}
  - match: {method: acme.Users/List}
    do:
      - send: {name: a}
      - sleep: 1ms
      - send: {name: b}
    stream: [{name: c}]
`)
	e := NewEngine(s, Upstream, Options{})
	got, st := answer(t, e, newCall(t, "acme.Users/Chat", nil, `{"from": "ann", "text": "hello"}`, `{"text": "how"}`))
	want := []string{
		`{"from":"bot","text":"welcome ann"}`,
		`{"from":"bot-0","text":"#0: hello"}`,
		`{"from":"bot-1","text":"#1: how"}`,
		`{"from":"bot","text":"bye after hello"}`,
	}
	if st.Code() != codes.OK || strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("chat:\n got %v %v\nwant %v", got, st, want)
	}
	got, st = answer(t, e, newCall(t, "acme.Users/Chat", nil, `{"text": "bad"}`))
	if st.Code() != codes.InvalidArgument || st.Message() != "no bad" || len(got) != 1 {
		t.Errorf("chat fail: got %v %v", got, st)
	}
	got, st = answer(t, e, newCall(t, "acme.Users/List", nil, `{}`))
	if st.Code() != codes.OK || len(got) != 3 {
		t.Errorf("list: got %v %v", got, st)
	}
}

// TestRespondBidiServerSpeaksFirst checks that a rule without a request
// matcher answers a bidi stream before the client sends anything.
func TestRespondBidiServerSpeaksFirst(t *testing.T) {
	s := parse(t, `
rules:
  - match: {method: acme.Users/Chat}
    do: [{send: {text: ready}}]
    each: [{reply: {text: "echo ${req.text}"}}]
`)
	e := NewEngine(s, Upstream, Options{})
	c := newCall(t, "acme.Users/Chat", nil)
	c.recvs = make(chan proto.Message)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c.ctx = ctx
	sent := make(chan proto.Message, 4)
	c.onSend = func(m proto.Message) { sent <- m }
	done := make(chan error, 1)
	go func() { done <- e.Respond(c) }()
	select {
	case m := <-sent:
		if got := toJSON(t, m); got != `{"text":"ready"}` {
			t.Fatalf("first message: got %s", got)
		}
	case <-ctx.Done():
		t.Fatal("the rule did not send before the client spoke")
	}
	c.recvs <- msg(t, c.method.Input(), `{"text": "hi"}`)
	if got := toJSON(t, <-sent); got != `{"text":"echo hi"}` {
		t.Fatalf("echo: got %s", got)
	}
	close(c.recvs)
	if err := <-done; err != nil {
		t.Fatalf("Respond: %v", err)
	}
}

func TestRespondDelayHonoursCancel(t *testing.T) {
	s := parse(t, `
rules:
  - {match: {method: acme.Users/Get}, delay: 1h, reply: {}}
`)
	e := NewEngine(s, Upstream, Options{})
	c := newCall(t, "acme.Users/Get", nil, `{}`)
	ctx, cancel := context.WithCancel(context.Background())
	c.ctx = ctx
	cancel()
	if _, st := answer(t, e, c); st.Code() != codes.Canceled {
		t.Fatalf("got %v, want CANCELLED", st)
	}
}

// TestTimesUnderConcurrency checks that `times` is exact when many calls
// race for a rule.
func TestTimesUnderConcurrency(t *testing.T) {
	s := parse(t, `
rules:
  - {name: first, match: {method: acme.Users/Get}, times: 25, reply: {name: first}}
  - {name: second, match: {method: acme.Users/Get}, times: 50, reply: {name: second}}
  - {name: rest, match: {method: acme.Users/Get}, reply: {name: rest}}
expect:
  - {rule: first, count: 25}
  - {rule: second, count: 50}
  - {rule: rest, count: 125}
  - {method: "acme.*/*", dir: forward, count: 200}
`)
	e := NewEngine(s, Upstream, Options{})
	var mu sync.Mutex
	counts := map[string]int{}
	var wg sync.WaitGroup
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := newCall(t, "acme.Users/Get", nil, `{}`)
			if err := e.Respond(c); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			counts[toJSON(t, c.sent[0])]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	want := map[string]int{`{"name":"first"}`: 25, `{"name":"second"}`: 50, `{"name":"rest"}`: 125}
	for k, v := range want {
		if counts[k] != v {
			t.Errorf("%s: got %d, want %d", k, counts[k], v)
		}
	}
	if rep := e.Check(); !rep.OK() {
		t.Errorf("expectations:\n%s", rep)
	}
}

// panicCall panics when the rule reads its metadata mid-run.
type panicCall struct{ *fakeCall }

func (p panicCall) SetHeader(metadata.MD) error { panic("boom") }

func TestRespondPanicFailsOnlyThatCall(t *testing.T) {
	s := parse(t, `
rules:
  - {match: {method: acme.Users/Get}, headers: {x: y}, reply: {}}
`)
	var ev events
	e := NewEngine(s, Upstream, Options{Observer: &ev})
	err := e.Respond(panicCall{newCall(t, "acme.Users/Get", nil, `{}`)})
	if st := status.Convert(err); st.Code() != codes.Internal || !strings.Contains(st.Message(), "boom") {
		t.Fatalf("got %v, want INTERNAL mentioning the panic", st)
	}
	if _, st := answer(t, e, newCall(t, "acme.Users/Get", nil, `{}`)); st.Code() != codes.OK {
		t.Fatalf("next call: got %v", st)
	}
	if got := len(ev.all()); got != 2 {
		t.Errorf("events: got %d, want 2", got)
	}
	// An OK call's event carries an OK status, never nil.
	if st := ev.all()[1].Status; st == nil || st.Code() != codes.OK {
		t.Errorf("status of the OK call's event = %v, want a non-nil OK status", st)
	}
}

func TestRuntimeTemplateErrorIsInternal(t *testing.T) {
	s := parse(t, `
rules:
  - {match: {method: acme.Users/Get}, reply: {scores: {1: {points: "${meta.points}"}}}}
`)
	e := NewEngine(s, Upstream, Options{})
	_, st := answer(t, e, newCall(t, "acme.Users/Get", metadata.Pairs("points", "not-a-number"), `{}`))
	if st.Code() != codes.Internal || !strings.Contains(st.Message(), `rules[0]" (test.yaml:3)`) {
		t.Fatalf("got %v", st)
	}
}

func TestMatchDoesNotUseTimes(t *testing.T) {
	s := parse(t, `
rules:
  - {name: once, match: {method: acme.Users/Get, request: {id: u1}}, times: 1, reply: {}}
`)
	e := NewEngine(s, Upstream, Options{})
	sc := loadTestSchema(t)
	m := sc.method(t, "acme.Users/Get")
	for i := 0; i < 3; i++ {
		if r := e.Match(m, nil, msg(t, m.Input(), `{"id": "u1"}`)); r.Rule == nil || r.Rule.Name != "once" {
			t.Fatalf("Match %d: got %+v", i, r)
		}
	}
	if r := e.Match(m, nil, msg(t, m.Input(), `{"id": "u2"}`)); r.Rule != nil || !strings.Contains(r.Reason, `request.id is "u2", want "u1"`) {
		t.Fatalf("Match miss: got %+v", r)
	}
	c := newCall(t, "acme.Users/Get", nil)
	if err := e.RespondReceived(c, msg(t, m.Input(), `{"id": "u1"}`)); err != nil {
		t.Fatalf("RespondReceived: %v", err)
	}
	if r := e.Match(m, nil, msg(t, m.Input(), `{"id": "u1"}`)); r.Rule != nil {
		t.Fatalf("after one use: got %+v, want a miss", r)
	}
}

// voteFlow wires an upstream engine to a downstream engine through an
// in-process connection, the way serve and call/connect meet.
func voteFlow(t *testing.T, up, down string) (*Engine, *Engine, *events) {
	t.Helper()
	sc := loadTestSchema(t)
	var ev events
	downEngine := NewEngine(parse(t, down), Downstream, Options{Observer: &ev})
	upEngine := NewEngine(parse(t, up), Upstream, Options{
		Observer: &ev,
		Caller: CallerFunc(func(_ context.Context, from calls.Peer, to string) ([]Target, error) {
			switch to {
			case "":
				return []Target{{Peer: from, Conn: &engineConn{engine: downEngine, schema: sc, peer: calls.Peer{Addr: "upstream"}}}}, nil
			case "all":
				var out []Target
				for id := uint64(1); id <= 3; id++ {
					out = append(out, Target{Peer: calls.Peer{BackchannelID: id}, Conn: &engineConn{engine: downEngine, schema: sc}})
				}
				return out, nil
			}
			return nil, status.Errorf(codes.NotFound, "no peer %s", to)
		}),
	})
	return upEngine, downEngine, &ev
}

const voteUpstream = `
rules:
  - name: vote-before-branch
    match:
      method: gitaly.OperationService/UserCreateBranch
      request: {branch_name: {re: "^feature/"}}
      metadata: {gitaly-reference-transaction: {exists: true}}
    do:
      - call:
          method: gitaly.RefTransaction/VoteTransaction
          with:
            transaction_id: "${meta.gitaly-reference-transaction | b64dec | fromjson.id}"
            reference_updates_hash: "${req.branch_name | sha1}"
            node: "${req.branch_name}"
          metadata: {x-voter: praefect}
          expect: {code: OK, reply: {state: COMMIT}}
          as: vote
          else: {code: ABORTED, message: "vote was ${vote.reply.state} from peer ${vote.peer.id}"}
      - reply: {}
expect:
  - {method: gitaly.RefTransaction/VoteTransaction, dir: reverse, min: 1}
  - {rule: vote-before-branch, code: OK, count: 1}
`

func TestVoteFlow(t *testing.T) {
	up, down, ev := voteFlow(t, voteUpstream, `
backchannel:
  - name: commit
    match: {method: gitaly.RefTransaction/VoteTransaction, request: {transaction_id: 1}, metadata: {x-voter: praefect}}
    reply: {state: COMMIT}
  - match: {method: gitaly.RefTransaction/VoteTransaction}
    reply: {state: ABORT}
expect:
  - {rule: commit, dir: reverse, count: 1}
`)
	c := newCall(t, "gitaly.OperationService/UserCreateBranch", transaction(`{"id": 1}`), `{"branch_name": "ZmVhdHVyZS94"}`)
	if _, st := answer(t, up, c); st.Code() != codes.OK {
		t.Fatalf("commit vote: got %v", st)
	}
	c = newCall(t, "gitaly.OperationService/UserCreateBranch", transaction(`{"id": 2}`), `{"branch_name": "ZmVhdHVyZS94"}`)
	if _, st := answer(t, up, c); st.Code() != codes.Aborted || st.Message() != "vote was ABORT from peer 7" {
		t.Fatalf("abort vote: got %v", st)
	}
	rep := up.Check()
	if len(rep.Results) != 2 || !rep.Results[0].OK || rep.Results[0].Count != 2 || !rep.Results[1].OK {
		t.Errorf("upstream expectations:\n%s", rep)
	}
	if rep := down.Check(); !rep.OK() {
		t.Errorf("downstream expectations:\n%s", rep)
	}
	// Events: per forward call, the reverse call made (with its cause) and
	// the reverse call answered, then the forward call itself.
	var made, answeredRev, fwd []*calls.Event
	for _, e := range ev.all() {
		switch {
		case e.Origin == calls.Made:
			made = append(made, e)
		case e.Dir == calls.Reverse:
			answeredRev = append(answeredRev, e)
		default:
			fwd = append(fwd, e)
		}
	}
	if len(made) != 2 || len(answeredRev) != 2 || len(fwd) != 2 {
		t.Fatalf("events: made %d, answered reverse %d, forward %d", len(made), len(answeredRev), len(fwd))
	}
	if made[0].Cause != fwd[0].ID || made[0].Dir != calls.Reverse || made[0].Rule.Name != "vote-before-branch" || made[0].Peer.BackchannelID != 7 {
		t.Errorf("made call event: %+v (forward id %d)", made[0], fwd[0].ID)
	}
	if got := toJSON(t, made[0].Requests[0]); got != `{"node":"feature/x","reference_updates_hash":"RSOSVKq0gMJxz57CCGNPofflEfA=","transaction_id":"1"}` {
		t.Errorf("vote request: %s", got)
	}
	if v := answeredRev[0].Metadata.Get("x-voter"); len(v) != 1 || v[0] != "praefect" {
		t.Errorf("vote metadata: %v", answeredRev[0].Metadata)
	}
	if answeredRev[0].Rule.Name != "commit" || fwd[0].Rule.Name != "vote-before-branch" || fwd[1].Status.Code() != codes.Aborted {
		t.Errorf("rules: %q %q, forward status %v", answeredRev[0].Rule.Name, fwd[0].Rule.Name, fwd[1].Status)
	}
}

func TestCallStepFanOutAndDefaultElse(t *testing.T) {
	up, _, _ := voteFlow(t, `
rules:
  - match: {method: acme.Users/Get, request: {id: "1"}}
    do:
      - call:
          method: gitaly.RefTransaction/StopTransaction
          to: all
          expect: {code: OK}
          as: stops
      - reply: {name: "stopped ${stops.count}, failed ${stops.failed}, second ${stops.calls.1.peer.id}"}
  - match: {method: acme.Users/Get, request: {id: "2"}}
    do:
      - call: {method: gitaly.RefTransaction/VoteTransaction, to: "42", expect: {code: OK}}
      - reply: {}
  - match: {method: acme.Users/Get, request: {id: "3"}}
    do:
      - call: {method: gitaly.RefTransaction/VoteTransaction, expect: {code: [NOT_FOUND, UNIMPLEMENTED]}, as: v}
      - reply: {name: "${v.code}: ${v.message}"}
  - match: {method: acme.Users/Get, request: {id: "4"}}
    do:
      - call:
          method: acme.Users/Create
          with: {user: {name: "user ${req.id}"}, validate_only: "${meta.x-dry-run}"}
          expect: {reply: {name: {re: "^checked "}}}
          as: created
      - reply: {name: "${created.reply.name}"}
`, `
backchannel:
  - match: {method: gitaly.RefTransaction/StopTransaction}
    reply: {}
  - match: {method: acme.Users/Create, request: {validate_only: true}}
    reply: {name: "checked ${req.user.name}"}
  - match: {method: acme.Users/Create}
    reply: {name: "created ${req.user.name}"}
`)
	got, st := answer(t, up, newCall(t, "acme.Users/Get", nil, `{"id": "1"}`))
	if st.Code() != codes.OK || got[0] != `{"name":"stopped 3, failed 0, second 2"}` {
		t.Errorf("fan out: %v %v", got, st)
	}
	_, st = answer(t, up, newCall(t, "acme.Users/Get", nil, `{"id": "2"}`))
	if st.Code() != codes.Aborted || !strings.Contains(st.Message(), "to peer 42: code is NOT_FOUND, want OK (message \"no peer 42\")") {
		t.Errorf("unknown peer: %v", st)
	}
	got, st = answer(t, up, newCall(t, "acme.Users/Get", nil, `{"id": "3"}`))
	if st.Code() != codes.OK || !strings.HasPrefix(got[0], `{"name":"UNIMPLEMENTED: no rule matched gitaly.RefTransaction/VoteTransaction`) {
		t.Errorf("expected failure code: %v %v", got, st)
	}
	// "${meta.x-dry-run}" fills a bool field: "true" becomes true.
	got, st = answer(t, up, newCall(t, "acme.Users/Get", metadata.Pairs("x-dry-run", "true"), `{"id": "4"}`))
	if st.Code() != codes.OK || got[0] != `{"name":"checked user 4"}` {
		t.Errorf("bool from text: %v %v", got, st)
	}
	_, st = answer(t, up, newCall(t, "acme.Users/Get", metadata.Pairs("x-dry-run", "false"), `{"id": "4"}`))
	if st.Code() != codes.Aborted || !strings.Contains(st.Message(), `reply.name "created user 4" does not match re "^checked "`) {
		t.Errorf("bool false from text: %v", st)
	}
}

func TestCallWithoutCaller(t *testing.T) {
	s := parse(t, `
rules:
  - match: {method: acme.Users/Get}
    do:
      - call: {method: gitaly.RefTransaction/VoteTransaction, timeout: 50ms, expect: {code: OK}}
      - reply: {}
`)
	e := NewEngine(s, Upstream, Options{})
	if _, st := answer(t, e, newCall(t, "acme.Users/Get", nil, `{}`)); st.Code() != codes.Aborted || !strings.Contains(st.Message(), "UNAVAILABLE") {
		t.Fatalf("got %v", st)
	}
}

func TestOnConnect(t *testing.T) {
	up, _, ev := voteFlow(t, `
on_connect:
  - call:
      method: gitaly.RefTransaction/VoteTransaction
      with: {node: "peer-${peer.id}"}
      expect: {reply: {state: COMMIT}}
      as: hello
  - sleep: 1ms
  - call: {method: gitaly.RefTransaction/StopTransaction, with: {transaction_id: "${peer.id}"}, expect: {code: OK}}
expect:
  - {method: gitaly.RefTransaction/*, dir: reverse, peer: 9, count: 2}
`, `
backchannel:
  - match: {method: gitaly.RefTransaction/VoteTransaction, request: {node: peer-9}}
    reply: {state: COMMIT}
  - match: {method: gitaly.RefTransaction/StopTransaction, request: {transaction_id: 10}}
    reply: {}
`)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := up.OnConnect(ctx, calls.Peer{BackchannelID: 9}); err == nil || !strings.Contains(err.Error(), "on_connect (test.yaml:9:5)") {
		t.Fatalf("OnConnect: got %v, want the second call to fail at test.yaml:9:5", err)
	}
	if rep := up.Check(); !rep.OK() {
		t.Errorf("expectations:\n%s", rep)
	}
	if got := len(ev.all()); got != 4 {
		t.Errorf("events: got %d, want 4", got)
	}
}

func TestCheckReport(t *testing.T) {
	s := parse(t, `
rules:
  - {name: get, match: {method: acme.Users/Get}, reply: {}}
expect:
  - {name: got-called, method: acme.Users/Get, dir: forward, min: 2}
  - {method: "gitaly.*/*", max: 0}
  - {method: acme.Users/Get, code: NOT_FOUND, count: 1}
  - {dir: reverse, peer: 3, min: 1, max: 2}
`)
	rep := s.Check([]calls.Record{
		{Dir: calls.Forward, Method: "acme.Users/Get", Code: codes.OK, Rule: "get"},
		{Dir: calls.Forward, Method: "acme.Users/Get", Code: codes.NotFound},
		{Dir: calls.Reverse, Method: "gitaly.RefTransaction/VoteTransaction", Peer: 3},
	})
	want := `expectations: 1 of 4 failed
  ok   got-called (test.yaml:5): want at least 2 forward calls to acme.Users/Get, got 2
  FAIL expect[1] (test.yaml:6): want at most 0 calls to gitaly.*/*, got 1
  ok   expect[2] (test.yaml:7): want exactly 1 call to acme.Users/Get ending NOT_FOUND, got 1
  ok   expect[3] (test.yaml:8): want 1 to 2 reverse calls with peer 3, got 1`
	if got := rep.String(); got != want {
		t.Errorf("report:\n%s\nwant:\n%s", got, want)
	}
	if err := rep.Err(); !errors.Is(err, ErrExpectationsFailed) {
		t.Errorf("Err: %v", err)
	}
	if got := fmt.Sprint(len(rep.Failed())); got != "1" {
		t.Errorf("Failed: %s", got)
	}
}

func TestReloadKeepsCounts(t *testing.T) {
	e := NewEngine(parse(t, `
rules:
  - {match: {method: acme.Users/Get}, times: 1, reply: {name: old}}
`), Upstream, Options{})
	if got, _ := answer(t, e, newCall(t, "acme.Users/Get", nil, `{}`)); got[0] != `{"name":"old"}` {
		t.Fatalf("old: %v", got)
	}
	e.Reload(parse(t, `
rules:
  - {match: {method: acme.Users/Get}, times: 1, reply: {name: new}}
expect:
  - {method: acme.Users/Get, count: 2}
`))
	if got, _ := answer(t, e, newCall(t, "acme.Users/Get", nil, `{}`)); got[0] != `{"name":"new"}` {
		t.Fatalf("new: %v", got)
	}
	if rep := e.Check(); !rep.OK() {
		t.Errorf("expectations after reload:\n%s", rep)
	}
}

func TestRuleRefJSON(t *testing.T) {
	s := parse(t, `
rules:
  - {name: get, match: {method: acme.Users/Get}, reply: {}}
`)
	b, err := json.Marshal(s.Rules[0].Ref())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"name":"get","at":"test.yaml:3:5"}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

// TestNoScriptGiven: the script of no file says so when a call comes,
// rather than that a script named like a placeholder has no rules.
func TestNoScriptGiven(t *testing.T) {
	for _, tt := range []struct {
		src  []byte
		want string
	}{
		{nil, "no rule matched acme.Users/Get: no script was given"},
		{[]byte(""), "no rule matched acme.Users/Get: the script empty.yaml has no rules"},
	} {
		sc, err := Parse(context.Background(), "empty.yaml", tt.src, Config{Upstream: loadTestSchema(t)})
		if err != nil {
			t.Fatal(err)
		}
		_, st := answer(t, NewEngine(sc, Upstream, Options{}), newCall(t, "acme.Users/Get", nil, `{}`))
		if st.Code() != codes.Unimplemented || st.Message() != tt.want {
			t.Errorf("src %q: %v %q, want UNIMPLEMENTED %q", tt.src, st.Code(), st.Message(), tt.want)
		}
	}
}
