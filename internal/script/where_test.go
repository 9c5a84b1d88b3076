package script

import (
	"encoding/base64"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
)

func transaction(js string) metadata.MD {
	return metadata.Pairs("gitaly-reference-transaction", base64.StdEncoding.EncodeToString([]byte(js)))
}

// TestWhereMatchesDecodedMetadata checks match.where on a field of
// Praefect's base64 JSON transaction metadata, with literals and matchers,
// and how a miss is explained.
func TestWhereMatchesDecodedMetadata(t *testing.T) {
	s := parse(t, `
vars: {hash: {hex: a9993e364706816aba3e25717850c26c9cd0d89d}}
rules:
  - name: primary
    match:
      method: acme.Users/Get
      where:
        "${meta.gitaly-reference-transaction | b64dec | fromjson.primary}": true
        "${meta.gitaly-reference-transaction | b64dec | fromjson.id}": {gt: 10}
    reply: {name: primary}
  - name: node
    match:
      method: acme.Users/Get
      where:
        "${meta.gitaly-reference-transaction | b64dec | fromjson.node}": {re: "^gitaly-[0-9]$"}
        "${meta.gitaly-reference-transaction | b64dec | fromjson}": {node: gitaly-2}
    reply: {name: secondary}
  - name: hash
    match:
      method: acme.Users/Get
      where:
        "${req.id | sha1}": {hex: a9993e364706816aba3e25717850c26c9cd0d89d}
        "${req.id | sha1 | hexenc}": {glob: "a999*"}
        "${vars.hash}": {base64: "qZk+NkcGgWq6PiVxeFDCbJzQ2J0="}
    reply: {name: hash}
`)
	e := NewEngine(s, Upstream, Options{})
	tests := []struct {
		name string
		md   metadata.MD
		req  string
		want string // the reply's name, or the UNIMPLEMENTED message
	}{
		{"primary", transaction(`{"id": 42, "node": "gitaly-1", "primary": true}`), `{}`, "primary"},
		{"secondary", transaction(`{"id": 42, "node": "gitaly-2", "primary": false}`), `{}`, "secondary"},
		{"primary with a small id", transaction(`{"id": 7, "node": "gitaly-2", "primary": true}`), `{}`, "secondary"},
		{"hash of the request", nil, `{"id": "abc"}`, "hash"},
		{"hash of another request", nil, `{"id": "abd"}`,
			`no rule matched acme.Users/Get; closest: "hash" (test.yaml:18): where ${req.id | sha1} is {hex: cb4cc28df0fdbe0ecf9d9662e294b118092a5735}, want {hex: a9993e364706816aba3e25717850c26c9cd0d89d}`},
		{"not primary", transaction(`{"id": 42, "node": "gitaly-3", "primary": false}`), `{}`,
			`no rule matched acme.Users/Get; closest: "primary" (test.yaml:4): where ${meta.gitaly-reference-transaction | b64dec | fromjson.primary} is false, want true`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, st := answer(t, e, newCall(t, "acme.Users/Get", tt.md, tt.req))
			switch {
			case st.Code() == codes.Unimplemented:
				if st.Message() != tt.want {
					t.Errorf("got  %s\nwant %s", st.Message(), tt.want)
				}
			case st.Code() != codes.OK || len(got) != 1 || got[0] != `{"name":"`+tt.want+`"}`:
				t.Errorf("got %v %v, want name %s", got, st, tt.want)
			}
		})
	}
	// A function that fails is a miss that says why.
	e1 := NewEngine(parse(t, "rules:\n  - {name: node, match: {method: acme.Users/Get, where: {\"${meta.tx | b64dec | fromjson}\": {node: gitaly-2}}}, reply: {}}\n"), Upstream, Options{})
	for md, want := range map[string]string{
		"%%": `where ${meta.tx | b64dec | fromjson}: b64dec: "%%" is not base64: illegal base64 data at input byte 0`,
		base64.StdEncoding.EncodeToString([]byte(`{"node": "gitaly-3"}`)): `where ${meta.tx | b64dec | fromjson}.node is "gitaly-3", want "gitaly-2"`,
	} {
		_, st := answer(t, e1, newCall(t, "acme.Users/Get", metadata.Pairs("tx", md), `{}`))
		if !strings.HasSuffix(st.Message(), want) {
			t.Errorf("tx %s: got %v, want a message ending %q", md, st, want)
		}
	}
	// Match (what the TUI asks) sees where too.
	if res := e.Match(loadTestSchema(t).method(t, "acme.Users/Get"), transaction(`{"primary": true, "id": 11}`), nil); res.Rule == nil || res.Rule.Name != "primary" {
		t.Errorf("Match: got %+v, want rule primary", res)
	}
}

// TestWhereAbsent checks that a missing metadata key is absent through
// the functions, for exists and for literals.
func TestWhereAbsent(t *testing.T) {
	s := parse(t, `
rules:
  - name: no-transaction
    match:
      method: acme.Users/Get
      where: {"${meta.gitaly-reference-transaction | b64dec | fromjson.id}": {exists: false}}
    reply: {name: none}
  - name: primary
    match:
      method: acme.Users/Get
      where: {"${meta.gitaly-reference-transaction | b64dec | fromjson.primary}": true}
    reply: {name: primary}
`)
	e := NewEngine(s, Upstream, Options{})
	got, st := answer(t, e, newCall(t, "acme.Users/Get", nil, `{}`))
	if st.Code() != codes.OK || got[0] != `{"name":"none"}` {
		t.Fatalf("got %v %v", got, st)
	}
	_, st = answer(t, NewEngine(&Script{Name: s.Name, Rules: s.Rules[1:]}, Upstream, Options{}), newCall(t, "acme.Users/Get", transaction(`{"id": 1}`), `{}`))
	if want := `where ${meta.gitaly-reference-transaction | b64dec | fromjson.primary} is null, want true`; !strings.HasSuffix(st.Message(), want) {
		t.Errorf("got %v, want a message ending %q", st, want)
	}
}

// TestWhereWaitsForFirstMessage checks that a where expression that reads
// req makes a client-streaming rule match on the first message.
func TestWhereWaitsForFirstMessage(t *testing.T) {
	s := parse(t, `
rules:
  - match:
      method: acme.Users/Import
      where: {"${req.name | sha1 | hexenc}": {glob: "a9993e36*"}}
    end: [{reply: {imported: "${i}"}}]
`)
	e := NewEngine(s, Upstream, Options{})
	got, st := answer(t, e, newCall(t, "acme.Users/Import", nil, `{"name": "abc"}`, `{"name": "x"}`))
	if st.Code() != codes.OK || got[0] != `{"imported":1}` {
		t.Fatalf("got %v %v", got, st)
	}
	_, st = answer(t, e, newCall(t, "acme.Users/Import", nil))
	if want := "the stream ended before its first message"; !strings.HasSuffix(st.Message(), want) {
		t.Errorf("got %v, want %q", st, want)
	}
}

// TestWhereLoadErrors checks where's keys and matchers at load time.
func TestWhereLoadErrors(t *testing.T) {
	tests := []struct {
		where string
		want  string
	}{
		{`{meta.x: 1}`, `rules[0].match.where: a where key is one ${...} expression, as in "${meta.x | b64dec | fromjson.id}"`},
		{`{"a ${meta.x}": 1}`, `a where key is one ${...} expression`},
		{`{"${n}": 1}`, `rules[0].match.where: ${n}: "n" is not available here (n counts the calls a rule has answered, and a rule is matched before it answers); available: req, meta, vars, env, now, uuid`},
		{`{"${meta.x | b64decode}": 1}`, `unknown function "b64decode"`},
		{`{"${req.id | b64dec.x}": 1}`, `b64dec gives bytes, which has no fields to read (.x)`},
		{`{"${req.nope}": 1}`, `${req.nope}: req (acme.GetUserRequest) has no field "nope"`},
		{`{"${meta.x | hexenc}": {regex: x}}`, `rules[0].match.where ${meta.x | hexenc}: unknown matcher "regex"; did you mean "re"`},
		{`{"${meta.x | sha1}": {hex: zz}}`, `rules[0].match.where ${meta.x | sha1}: {hex: "zz"} is not hexadecimal`},
		{`{"${meta.x | hexenc}": {gt: 1, re: "^a"}}`, ``},
		{`{"${meta.x}": "${meta.y}"}`, `templates are not allowed in matchers`},
		{`[a]`, `rules[0].match.where must be a mapping, not a list`},
	}
	for _, tt := range tests {
		t.Run(tt.where, func(t *testing.T) {
			got := parseErr(t, "rules:\n  - match: {method: acme.Users/Get, where: "+tt.where+"}\n    reply: {}\n")
			if tt.want == "" {
				if got != "" {
					t.Fatalf("got %s, want it to load", got)
				}
				return
			}
			if !strings.Contains(got, tt.want) {
				t.Errorf("got  %s\nwant it to contain %s", got, tt.want)
			}
		})
	}
}
