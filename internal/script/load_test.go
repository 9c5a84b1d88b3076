package script

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// designSketch is the sketch from DESIGN.md, which must load as written.
const designSketch = `
rules:                       # forward calls that serve answers
  - name: vote-before-branch
    match:
      method: gitaly.RefService/CreateBranch
      request: {branch_name: {re: "^feature/"}}
      metadata: {x-transaction: {exists: true}}
    do:
      - call:
          method: gitaly.RefTransaction/VoteTransaction
          with: {transaction_id: "${meta.x-transaction}", reference_updates_hash: "abc"}
          expect: {code: OK, reply: {state: COMMIT}}
          as: vote
          else: {code: ABORTED, message: "vote was ${vote.reply.state}"}
      - reply: {}
  - match: {method: acme.Users/Get}
    times: 2
    fail: {code: UNAVAILABLE, message: "attempt ${n}"}
  - match: {method: acme.Users/Get}
    reply: {id: "${req.id}", display_name: "user ${req.id}"}
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
	if e := s.Expectations[0]; e.Dir != Reverse || e.Min != 1 || e.Max != -1 {
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
  - match: {method: gitaly.RefService/CreateBrunch}
    reply: {}
`, []string{`test.yaml:3:21: rules[0].match.method: unknown method "gitaly.RefService/CreateBrunch"; did you mean "gitaly.RefService/CreateBranch"?`}},
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
    reply: {id: 1, dispay_name: x}
`, []string{`test.yaml:4:20: rules[0].reply: unknown field "dispay_name" in acme.User; did you mean "display_name"?`}},
		{"unknown nested field in with", `
rules:
  - match: {method: gitaly.RefService/CreateBranch}
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
  - match: {method: acme.Users/Get, request: {trace_id: {re: "(["}}}
    reply: {}
`, []string{`test.yaml:3:62: rules[0].match.request.trace_id: bad re "([":`}},
		{"unknown matcher", `
rules:
  - match: {method: acme.Users/Get, request: {trace_id: {regex: "x"}}}
    reply: {}
`, []string{`test.yaml:3:58: rules[0].match.request.trace_id: unknown matcher "regex"; did you mean "re"`}},
		{"bad code name", `
rules:
  - match: {method: acme.Users/Get}
    fail: {code: NOT_FOUNDD}
`, []string{`test.yaml:4:18: rules[0].fail.code: unknown status code "NOT_FOUNDD"; did you mean "NOT_FOUND"?`}},
		{"unknown template root", `
rules:
  - match: {method: acme.Users/Get}
    reply: {display_name: "${request.id}"}
`, []string{`test.yaml:4:27: rules[0].reply.display_name: ${request.id}: unknown name "request"; did you mean "req"?`}},
		{"unknown template field", `
rules:
  - match: {method: acme.Users/Get}
    reply: {display_name: "${req.name}"}
`, []string{`${req.name}: req (acme.GetUserRequest) has no field "name"`}},
		{"capture used before its call", `
rules:
  - match: {method: gitaly.RefService/CreateBranch}
    do:
      - reply: {status: "${vote.reply.state}"}
      - call: {method: gitaly.RefTransaction/VoteTransaction, as: vote}
`, []string{`unknown name "vote"`}},
		{"unclosed template", `
rules:
  - match: {method: acme.Users/Get}
    reply: {display_name: "${req.id"}
`, []string{`unclosed ${`}},
		{"enum value", `
backchannel:
  - match: {method: gitaly.RefTransaction/VoteTransaction}
    reply: {state: COMMITT}
`, []string{`test.yaml:4:20: backchannel[0].reply.state: enum gitaly.VoteTransactionResponse.TransactionState has no value "COMMITT"; did you mean "COMMIT"?`}},
		{"number type", `
rules:
  - match: {method: acme.Users/Get}
    reply: {id: many}
`, []string{`test.yaml:4:17: rules[0].reply.id: many is not an int64`}},
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
  - match: {method: gitaly.RefService/FindAllBranches}
    stream: [{branches: [{name: !!binary "a.b"}]}]
`, []string{`test.yaml:4:33: rules[0].stream[0].branches[0].name: !!binary "a.b" is not base64`}},
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
  - {match: {method: acme.Users/Get, request: {trace_id: "${meta.x}"}}, reply: {}}
`, []string{`templates are not allowed in matchers`}},
		{"yaml syntax", "rules:\n  - match: {method: [\n", []string{`test.yaml:2: YAML: did not find expected node content`}},
		{"timestamp", `
rules:
  - {match: {method: acme.Users/Get}, reply: {created: yesterday}}
`, []string{`rules[0].reply.created is a google.protobuf.Timestamp`}},
		{"oneof-like double set", `
rules:
  - {match: {method: acme.Users/Get}, reply: {display_name: a, displayName: b}}
`, []string{`field display_name is set twice`}},
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
      method: /acme.Users.Get
      request: {traceId: {glob: "t-*"}, shard: {one_of: [1, 2]}}
    reply:
      id: 0x10
      displayName: "${vars.greeting} ${req.trace_id}"
      tags: [a, "b"]
      labels: {team: core}
      created: "2024-01-02T03:04:05Z"
      extra: {anything: [1, two, {three: 3}]}
      score: 1.5
      active: true
      role: ROLE_ADMIN
      email: me@example.com
`)
	_ = s
}
