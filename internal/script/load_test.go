package script

import (
	"context"
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/bcctl/bcctl/internal/calls"
)

// designSketch is the sketch from DESIGN.md, with Gitaly's real method and
// transaction metadata (DESIGN.md's sketch predates them).
const designSketch = `
rules:                       # forward calls that serve answers
  - name: vote-before-branch
    match:
      method: gitaly.OperationService/UserCreateBranch
      request: {branch_name: {re: "^feature/"}}
      metadata: {gitaly-reference-transaction: {exists: true}}
    do:
      - call:
          method: gitaly.RefTransaction/VoteTransaction
          with: {transaction_id: "${meta.gitaly-reference-transaction | b64dec | fromjson.id}", reference_updates_hash: "${req.branch_name | sha1}"}
          expect: {code: OK, reply: {state: COMMIT}}
          as: vote
          else: {code: ABORTED, message: "vote was ${vote.reply.state}"}
      - reply: {}
  - match: {method: acme.Users/Get}
    times: 2
    fail: {code: UNAVAILABLE, message: "attempt ${n}"}
  - match: {method: acme.Users/Get}
    reply: {id: "${req.id}", name: "user ${req.id}"}
backchannel:
  - match: {method: gitaly.RefTransaction/VoteTransaction}
    reply: {state: COMMIT}
on_connect: []
expect:
  - {method: gitaly.RefTransaction/VoteTransaction, dir: reverse, min: 1}
`

func TestParseDesignSketch(t *testing.T) {
	s := parse(t, designSketch)
	if got, want := len(s.Rules), 3; got != want {
		t.Fatalf("rules: got %d, want %d", got, want)
	}
	if got, want := s.Rules[0].Name, "vote-before-branch"; got != want {
		t.Errorf("rule 0 name: got %q, want %q", got, want)
	}
	if got, want := s.Rules[1].Name, "rules[1]"; got != want {
		t.Errorf("rule 1 derived name: got %q, want %q", got, want)
	}
	if got, want := s.Rules[1].Pos.Line, 16; got != want {
		t.Errorf("rule 1 line: got %d, want %d", got, want)
	}
	if got, want := s.Rules[1].Times, 2; got != want {
		t.Errorf("rule 1 times: got %d, want %d", got, want)
	}
	if got, want := len(s.Backchannel), 1; got != want {
		t.Errorf("backchannel rules: got %d, want %d", got, want)
	}
	if got, want := len(s.Expectations), 1; got != want {
		t.Fatalf("expectations: got %d, want %d", got, want)
	}
	if e := s.Expectations[0]; e.Dir != calls.Reverse || e.Min != 1 || e.Max != -1 {
		t.Errorf("expectation: got dir %v min %d max %d", e.Dir, e.Min, e.Max)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string // substrings of the error, in order
	}{
		{"unknown method with close match", `
rules:
  - match: {method: gitaly.OperationService/UserCreateBrunch}
    reply: {}
`, []string{`test.yaml:3:21: rules[0].match.method: unknown method "gitaly.OperationService/UserCreateBrunch"; did you mean "gitaly.OperationService/UserCreateBranch"?`}},
		{"unknown service", `
rules:
  - match: {method: acme.Userz/Get}
    reply: {}
`, []string{`test.yaml:3:21:`, `did you mean "acme.Users/Get"`}},
		{"glob matching nothing", `
rules:
  - match: {method: "nope.*/*"}
    fail: {code: INTERNAL}
`, []string{`test.yaml:3:21: rules[0].match.method: method pattern "nope.*/*" matches no known method`}},
		{"unknown field in reply", `
rules:
  - match: {method: acme.Users/Get}
    reply: {id: "1", nickame: x}
`, []string{`test.yaml:4:22: rules[0].reply: unknown field "nickame" in acme.User; did you mean "nickname"?`}},
		{"unknown nested field in with", `
rules:
  - match: {method: gitaly.OperationService/UserCreateBranch}
    do:
      - call:
          method: gitaly.RefTransaction/VoteTransaction
          with: {repository: {storage: x}}
      - reply: {}
`, []string{`test.yaml:7:31: rules[0].do[0].call.with.repository: unknown field "storage" in gitaly.Repository; did you mean "storage_name"?`}},
		{"unknown field in match request", `
rules:
  - match: {method: acme.Users/Get, request: {idd: 1}}
    reply: {}
`, []string{`test.yaml:3:47: rules[0].match.request: unknown field "idd" in acme.GetUserRequest`}},
		{"bad regex", `
rules:
  - match: {method: acme.Users/Get, request: {id: {re: "(["}}}
    reply: {}
`, []string{`test.yaml:3:56: rules[0].match.request.id: bad re "([":`}},
		{"unknown matcher", `
rules:
  - match: {method: acme.Users/Get, request: {id: {regex: "x"}}}
    reply: {}
`, []string{`test.yaml:3:52: rules[0].match.request.id: unknown matcher "regex"; did you mean "re"`}},
		{"bad code name", `
rules:
  - match: {method: acme.Users/Get}
    fail: {code: NOT_FOUNDD}
`, []string{`test.yaml:4:18: rules[0].fail.code: unknown status code "NOT_FOUNDD"; did you mean "NOT_FOUND"?`}},
		{"unknown template root", `
rules:
  - match: {method: acme.Users/Get}
    reply: {name: "${request.id}"}
`, []string{`test.yaml:4:19: rules[0].reply.name: ${request.id}: unknown name "request"; did you mean "req"?`}},
		{"unknown template field", `
rules:
  - match: {method: acme.Users/Get}
    reply: {name: "${req.name}"}
`, []string{`test.yaml:4:19: rules[0].reply.name: ${req.name}: req (acme.GetUserRequest) has no field "name"`}},
		{"capture used before its call", `
rules:
  - match: {method: gitaly.OperationService/UserCreateBranch}
    do:
      - reply: {branch: {name: "${vote.reply.state}"}}
      - call: {method: gitaly.RefTransaction/VoteTransaction, as: vote}
`, []string{`unknown name "vote"`}},
		{"unclosed template", `
rules:
  - match: {method: acme.Users/Get}
    reply: {name: "${req.id"}
`, []string{`unclosed ${`}},
		{"enum value", `
backchannel:
  - match: {method: gitaly.RefTransaction/VoteTransaction}
    reply: {state: COMMITT}
`, []string{`test.yaml:4:20: backchannel[0].reply.state: enum gitaly.VoteTransactionResponse.TransactionState has no value "COMMITT"; did you mean "COMMIT"?`}},
		{"number type", `
rules:
  - match: {method: acme.Users/Get}
    reply: {scores: {7: {points: many}}}
`, []string{`test.yaml:4:34: rules[0].reply.scores.7.points: many is not an int64`}},
		{"map key type", `
rules:
  - match: {method: acme.Users/Get}
    reply: {scores: {seven: {points: 7}}}
`, []string{`test.yaml:4:22: rules[0].reply.scores: map key "seven" is not a int32`}},
		{"unary without reply", `
rules:
  - match: {method: acme.Users/Get}
    delay: 1s
`, []string{`acme.Users/Get is unary and returns one message: the rule needs reply or fail`}},
		{"each on unary", `
rules:
  - match: {method: acme.Users/Get}
    each: [{sleep: 1s}]
    reply: {}
`, []string{`each: acme.Users/Get is unary; each and end are for client and bidi streams`}},
		{"send on unary", `
rules:
  - match: {method: acme.Users/Get}
    do: [{send: {}}]
`, []string{`send needs a server-streaming or bidi method`}},
		{"unknown top-level and rule keys", `
rulez: []
rules:
  - match: {method: acme.Users/Get}
    replay: {}
`, []string{`test.yaml:2:1: unknown key "rulez" in the script; did you mean "rules"?`, `test.yaml:5:5: unknown key "replay" in rules[0]; did you mean "reply"`}},
		{"call target computed", `
rules:
  - match: {method: acme.Users/Get}
    do:
      - call: {method: gitaly.RefTransaction/VoteTransaction, to: "${meta.peer}"}
      - reply: {}
`, []string{`never computed from a request`}},
		{"call to in backchannel", `
backchannel:
  - match: {method: gitaly.RefTransaction/VoteTransaction}
    do:
      - call: {method: acme.Users/Get, to: all}
      - reply: {}
`, []string{`calls only go to the upstream`}},
		{"call of streaming method", `
rules:
  - match: {method: acme.Users/Get}
    do:
      - call: {method: acme.Users/List}
      - reply: {}
`, []string{`call supports unary methods; acme.Users/List is server-streaming`}},
		{"expect rule unknown", `
rules:
  - {name: one, match: {method: acme.Users/Get}, reply: {}}
expect:
  - {rule: onw}
`, []string{`expect[0].rule: no rule is named "onw"; did you mean "one"?`}},
		{"expect method unknown", `
expect:
  - {method: acme.Users/Gett, dir: forward}
`, []string{`expect[0].method: unknown method "acme.Users/Gett"`}},
		{"duplicate rule names", `
rules:
  - {name: a, match: {method: acme.Users/Get}, reply: {}}
  - {name: a, match: {method: acme.Users/Get}, reply: {}}
`, []string{`rule name "a" is already used at test.yaml:3:5`}},
		{"bad duration", `
rules:
  - {match: {method: acme.Users/Get}, delay: 10, reply: {}}
`, []string{`delay must be a duration such as 250ms or 2s, not "10"`}},
		{"binary not base64", `
rules:
  - match: {method: acme.Users/List}
    stream: [{name: ann}, {name: bob, avatar: !!binary "a.b"}]
`, []string{`test.yaml:4:47: rules[0].stream[1].avatar: !!binary "a.b" is not base64`}},
		{"fail OK", `
rules:
  - {match: {method: acme.Users/Get}, fail: {code: OK}}
`, []string{`OK is not a failure; use reply`}},
		{"unknown Any type", `
rules:
  - match: {method: acme.Users/Get}
    fail:
      code: INVALID_ARGUMENT
      details: [{"@type": "google.rpc.ErrInfo"}]
`, []string{`unknown message type "type.googleapis.com/google.rpc.ErrInfo"`}},
		{"templates in matchers", `
rules:
  - {match: {method: acme.Users/Get, request: {id: "${meta.x}"}}, reply: {}}
`, []string{`templates are not allowed in matchers`}},
		{"yaml syntax", "rules:\n  - match: {method: [\n", []string{`test.yaml:2: YAML: did not find expected node content`}},
		{"timestamp", `
rules:
  - {match: {method: acme.Users/Get}, reply: {created_at: yesterday}}
`, []string{`test.yaml:3:59: rules[0].reply.created_at is a google.protobuf.Timestamp`}},
		{"duration", `
rules:
  - {match: {method: acme.Users/Get}, reply: {session_ttl: 1 hour}}
`, []string{`test.yaml:3:60: rules[0].reply.session_ttl is a google.protobuf.Duration`}},
		{"oneof-like double set", `
rules:
  - {match: {method: acme.Users/Get}, reply: {quota_bytes: 1, quotaBytes: 2}}
`, []string{`test.yaml:3:63: rules[0].reply: field quota_bytes is set twice (as "quota_bytes" and "quotaBytes")`}},
		{"two members of a oneof", `
rules:
  - {match: {method: acme.Users/Get}, reply: {email: a@example.com, phone: "+49 30 1234"}}
`, []string{`test.yaml:3:69: rules[0].reply: email and phone belong to oneof contact: set only one`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseErr(t, tt.src)
			if got == "" {
				t.Fatalf("Parse succeeded, want an error containing %q", tt.want)
			}
			rest := got
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("error:\n%s\nwant it to contain (in order):\n%s", got, w)
				}
				rest = rest[i+len(w):]
			}
		})
	}
}

func TestParseReportsEveryError(t *testing.T) {
	_, err := Parse(context.Background(), "many.yaml", []byte(`
rules:
  - match: {method: acme.Users/Gett}
    reply: {}
  - match: {method: acme.Users/Get}
    reply: {nope: 1}
  - match: {method: acme.Users/Get}
    fail: {code: WHAT}
`), Config{Upstream: loadTestSchema(t)})
	var le *LoadError
	if !errors.As(err, &le) {
		t.Fatalf("error %v is not a *LoadError", err)
	}
	if !errors.Is(err, ErrInvalidScript) {
		t.Errorf("error does not wrap ErrInvalidScript")
	}
	if got, want := len(le.Diagnostics), 3; got != want {
		t.Fatalf("diagnostics: got %d, want %d:\n%v", got, want, err)
	}
	for i, wantLine := range []int{3, 6, 8} {
		if got := le.Diagnostics[i].Pos.Line; got != wantLine {
			t.Errorf("diagnostic %d line: got %d, want %d", i, got, wantLine)
		}
	}
}

func TestParseAcceptsNamesAndForms(t *testing.T) {
	s := parse(t, `
vars:
  greeting: hello
  limits: {max: 3}
x-defaults: &ok {code: OK}
rules:
  - match:
      method: /gitaly.RefTransaction.VoteTransaction
      request: {transactionId: {one_of: [1, "2"]}, referenceUpdatesHash: {glob: "t-*"}, phase: PREPARED_PHASE}
    reply: {state: 2}
  - match:
      method: /acme.Users.Get
      request: {id: {glob: "u-*"}}
    reply:
      id: "${req.id}"
      name: "${vars.greeting} ${req.id}"
      role: 3
      createdAt: "2024-01-02T03:04:05Z"
      session_ttl: 1.5s
      attributes: {anything: [1, two, {three: 3}]}
      labels: {team: core}
      groups: [a, "b"]
      avatar: !!binary "AP8="
      email: me@example.com
      nickname: ann
      quotaBytes: 0x10
      extra: {"@type": acme.Address, city: Berlin}
      repositories: [{storage_name: default, relativePath: a.git}]
      scores: {-1: {points: "9007199254740993", ratio: 1.5}}
`)
	e := NewEngine(s, Upstream, Options{})
	got, st := answer(t, e, newCall(t, "gitaly.RefTransaction/VoteTransaction", nil, `{"transaction_id": "2", "reference_updates_hash": "dC0x", "phase": "PREPARED_PHASE"}`))
	if st.Code() != codes.OK || len(got) != 1 || got[0] != `{"state":"STOP"}` {
		t.Errorf("vote: got %v %v", got, st)
	}
	got, st = answer(t, e, newCall(t, "acme.Users/Get", nil, `{"id": "u-1"}`))
	want := `{"attributes":{"anything":[1,"two",{"three":3}]},"avatar":"AP8=","created_at":"2024-01-02T03:04:05Z",` +
		`"email":"me@example.com","extra":{"@type":"type.googleapis.com/acme.Address","city":"Berlin"},"groups":["a","b"],` +
		`"id":"u-1","labels":{"team":"core"},"name":"hello u-1","nickname":"ann","quota_bytes":"16",` +
		`"repositories":[{"relative_path":"a.git","storage_name":"default"}],"role":"ROLE_ADMIN",` +
		`"scores":{"-1":{"points":"9007199254740993","ratio":1.5}},"session_ttl":"1.500s"}`
	if st.Code() != codes.OK || len(got) != 1 || got[0] != want {
		t.Errorf("user:\n got %v %v\nwant %s", got, st, want)
	}
}
