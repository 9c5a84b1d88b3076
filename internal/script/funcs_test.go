package script

import (
	"encoding/base64"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
)

// txMeta is Praefect's gitaly-reference-transaction value for transaction
// 42 on node gitaly-1, the primary.
var txMeta = base64.StdEncoding.EncodeToString([]byte(`{"id":42,"node":"gitaly-1","primary":true}`))

// TestTemplateFunctions runs every template function on text, bytes and
// JSON, into string, bytes, number and Struct fields.
func TestTemplateFunctions(t *testing.T) {
	md := metadata.Pairs(
		"x-text", "abc",
		"x-main-b64", "bWFpbg==",
		"x-main-b64-unpadded", "bWFpbg",
		"x-url", "-_8",
		"x-hex", "6D61696e",
		"x-raw-bin", "\x00\xff",
		"x-list", `[1, "two", {"three": 3}]`,
		"gitaly-reference-transaction", txMeta,
	)
	tests := []struct {
		name  string
		field string // of acme.User
		tmpl  string
		want  string // the reply, as JSON
	}{
		{"b64enc of text", "name", "${meta.x-text | b64enc}", `{"name":"YWJj"}`},
		{"b64enc of bytes", "name", "${meta.x-raw-bin | b64enc}", `{"name":"AP8="}`},
		{"b64dec into text", "name", "${meta.x-main-b64 | b64dec}", `{"name":"main"}`},
		{"b64dec unpadded", "name", "${meta.x-main-b64-unpadded | b64dec}", `{"name":"main"}`},
		{"b64dec into bytes", "avatar", "${meta.x-main-b64 | b64dec}", `{"avatar":"bWFpbg=="}`},
		{"b64urlenc", "name", "${meta.x-raw-bin | b64urlenc}", `{"name":"AP8="}`},
		{"b64urldec", "avatar", "${meta.x-url | b64urldec}", `{"avatar":"+/8="}`},
		{"b64urlenc round trip", "name", "${meta.x-url | b64urldec | b64urlenc}", `{"name":"-_8="}`},
		{"hexenc", "name", "${meta.x-text | hexenc}", `{"name":"616263"}`},
		{"hexenc of bytes", "name", "${meta.x-raw-bin | hexenc}", `{"name":"00ff"}`},
		{"hexdec either case", "avatar", "${meta.x-hex | hexdec}", `{"avatar":"bWFpbg=="}`},
		{"sha1 as hex", "name", "${meta.x-text | sha1 | hexenc}", `{"name":"a9993e364706816aba3e25717850c26c9cd0d89d"}`},
		{"sha1 into bytes", "avatar", "${meta.x-text | sha1}", `{"avatar":"qZk+NkcGgWq6PiVxeFDCbJzQ2J0="}`},
		{"sha256 as hex", "name", "${meta.x-text | sha256 | hexenc}", `{"name":"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}`},
		{"sha256 of decoded bytes", "name", "${meta.x-main-b64 | b64dec | sha256 | hexenc}", `{"name":"0d6e4079e36703ebd37c00722f5891d28b0e2811dc114b129215123adcce3605"}`},
		{"fromjson field", "name", "${meta.gitaly-reference-transaction | b64dec | fromjson.node}", `{"name":"gitaly-1"}`},
		{"fromjson number as text", "name", "id ${meta.gitaly-reference-transaction | b64dec | fromjson.id}", `{"name":"id 42"}`},
		{"fromjson bool as text", "name", "${meta.gitaly-reference-transaction | b64dec | fromjson.primary}", `{"name":"true"}`},
		{"fromjson list element", "name", "${meta.x-list | fromjson.1}", `{"name":"two"}`},
		{"fromjson nested", "name", "${meta.x-list | fromjson.2.three}", `{"name":"3"}`},
		{"fromjson whole into Struct", "attributes", "${meta.gitaly-reference-transaction | b64dec | fromjson}", `{"attributes":{"id":42,"node":"gitaly-1","primary":true}}`},
		{"fromjson missing field is absent", "name", "${meta.gitaly-reference-transaction | b64dec | fromjson.nope}", `{}`},
		{"absent metadata stays absent", "avatar", "${meta.x-nope | b64dec | sha1}", `{}`},
		{"tojson of the request", "name", "${req | tojson}", `{"name":"{\"id\":\"u-1\"}"}`},
		{"tojson of bytes", "name", "${meta.x-raw-bin | tojson}", `{"name":"\"AP8=\""}`},
		{"tojson of decoded JSON", "name", "${meta.x-list | fromjson | tojson}", `{"name":"[1,\"two\",{\"three\":3}]"}`},
		{"functions in interpolation", "name", "node=${meta.gitaly-reference-transaction | b64dec | fromjson.node} hash=${meta.x-text | sha1 | hexenc}", `{"name":"node=gitaly-1 hash=a9993e364706816aba3e25717850c26c9cd0d89d"}`},
		{"spaces are optional", "name", "${meta.x-text|hexenc}", `{"name":"616263"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := parse(t, "rules:\n  - match: {method: acme.Users/Get}\n    reply: {"+tt.field+": \""+strings.ReplaceAll(tt.tmpl, `"`, `\"`)+"\"}\n")
			got, st := answer(t, NewEngine(s, Upstream, Options{}), newCall(t, "acme.Users/Get", md, `{"id": "u-1"}`))
			if st.Code() != codes.OK || len(got) != 1 || got[0] != tt.want {
				t.Errorf("%s: got %v %v, want %s", tt.tmpl, got, st, tt.want)
			}
		})
	}
}

// TestTemplateFunctionNumbers checks that a number read from JSON fills a
// uint64 field, and a decoded node a string field, of a call step's
// request: what Gitaly does with Praefect's transaction metadata.
func TestTemplateFunctionNumbers(t *testing.T) {
	s := parse(t, `
rules:
  - match: {method: acme.Users/Get}
    do:
      - call:
          method: gitaly.RefTransaction/VoteTransaction
          with:
            transaction_id: "${meta.gitaly-reference-transaction | b64dec | fromjson.id}"
            node: "${meta.gitaly-reference-transaction | b64dec | fromjson.node}"
            reference_updates_hash: "${req.id | sha1}"
            phase: PREPARED_PHASE
    reply: {}
backchannel:
  - match:
      method: gitaly.RefTransaction/VoteTransaction
      request: {transaction_id: 42, node: gitaly-1, reference_updates_hash: {hex: 7c4a8d09ca3762af61e59520943dc26494f8941b}}
    reply: {state: COMMIT}
`)
	up, down := pairEngines(t, s, nil)
	var ev events
	down.opts.Observer = &ev
	c := newCall(t, "acme.Users/Get", metadata.Pairs("gitaly-reference-transaction", txMeta), `{"id": "123456"}`)
	if _, st := answer(t, up, c); st.Code() != codes.OK {
		t.Fatalf("got %v", st)
	}
	all := ev.all()
	if len(all) != 1 || all[0].Status.Code() != codes.OK {
		t.Fatalf("vote: got %d events %v", len(all), all)
	}
	if got, want := toJSON(t, all[0].Requests[0]), `{"node":"gitaly-1","phase":"PREPARED_PHASE","reference_updates_hash":"fEqNCco3Yq9h5ZUglD3CZJT4lBs=","transaction_id":"42"}`; got != want {
		t.Errorf("vote request: got %s, want %s", got, want)
	}
}

// TestTemplateFunctionRunTimeErrors checks that a function that fails on
// the value it gets fails that call with INTERNAL, naming the expression,
// the function and the value.
func TestTemplateFunctionRunTimeErrors(t *testing.T) {
	md := metadata.Pairs("x-text", "!!", "x-json", `{"id": 1} x`, "gitaly-reference-transaction", txMeta)
	tests := []struct {
		tmpl string
		want string
	}{
		{"${meta.x-text | b64dec}", `${meta.x-text | b64dec}: b64dec: "!!" is not base64`},
		{"${meta.x-text | b64urldec}", `${meta.x-text | b64urldec}: b64urldec: "!!" is not base64`},
		{"${meta.x-text | hexdec}", `${meta.x-text | hexdec}: hexdec: "!!" is not hex`},
		{"${meta.x-text | fromjson}", `${meta.x-text | fromjson}: fromjson: "!!" is not JSON`},
		{"${meta.x-json | fromjson}", `${meta.x-json | fromjson}: fromjson: "{\"id\": 1} x" is not one JSON value: there is more after it`},
		{"${meta.gitaly-reference-transaction | b64dec | fromjson.id | sha1}", `sha1: takes text or bytes, got 42`},
	}
	for _, tt := range tests {
		t.Run(tt.tmpl, func(t *testing.T) {
			s := parse(t, "rules:\n  - name: r\n    match: {method: acme.Users/Get}\n    reply: {avatar: \""+tt.tmpl+"\"}\n")
			_, st := answer(t, NewEngine(s, Upstream, Options{}), newCall(t, "acme.Users/Get", md, `{}`))
			if st.Code() != codes.Internal || !strings.Contains(st.Message(), tt.want) {
				t.Errorf("got %v, want INTERNAL containing %q", st, tt.want)
			}
		})
	}
}

// TestTemplateFunctionLoadErrors checks that functions and the fields they
// fill are type-checked when the script loads.
func TestTemplateFunctionLoadErrors(t *testing.T) {
	tests := []struct {
		reply string
		want  string
	}{
		{`{name: "${meta.x | b64decode}"}`, `test.yaml:3:19: rules[0].reply.name: ${meta.x | b64decode}: unknown function "b64decode"; did you mean "b64dec"?`},
		{`{name: "${meta.x | }"}`, `empty function after |: write a function such as b64dec`},
		{`{name: "${meta.x || hexenc}"}`, `empty function after |`},
		{`{name: "${n | b64dec}"}`, `rules[0].reply.name: ${n | b64dec}: b64dec takes text or bytes, not a number (the value of n)`},
		{`{name: "${req | sha1}"}`, `${req | sha1}: sha1 takes text or bytes, not an object (the value of req)`},
		{`{name: "${peer.id | hexenc}"}`, `hexenc takes text or bytes, not a number (the value of peer)`},
		{`{name: "${meta.x | fromjson | sha256}"}`, ``}, // JSON is checked when it runs
		{`{name: "${meta.x | b64dec | fromjson.id | b64enc}"}`, ``},
		{`{name: "${meta.x | sha1 | sha1 | hexenc | b64dec}"}`, ``},
		{`{name: "${meta.x | b64dec.id}"}`, `${meta.x | b64dec.id}: b64dec gives bytes, which has no fields to read (.id)`},
		{`{name: "${meta.x | hexenc.0}"}`, `hexenc gives text, which has no fields to read (.0)`},
		{`{name: "${meta.x | nope.x}"}`, `unknown function "nope"; known: b64enc, b64dec, b64urlenc, b64urldec, hexenc, hexdec, sha1, sha256, fromjson, tojson`},
		{`{name: "${meta.x | fromjson.a..b}"}`, `bad path "fromjson.a..b"`},
		{`{name: "${req}"}`, `rules[0].reply.name: ${req} gives an object; a string field takes text or bytes or a number or a boolean`},
		{`{groups: "${meta.x}"}`, `rules[0].reply.groups: ${meta.x} gives text; a repeated field takes a list`},
		{`{labels: "${meta.x | sha1}"}`, `${meta.x | sha1} gives bytes; a map field takes an object`},
		{`{role: "${meta.x | sha1}"}`, `${meta.x | sha1} gives bytes; an enum field takes text or a number`},
		{`{avatar: "${req}"}`, `${req} gives an object; a bytes field takes bytes or text or a number`},
		{`{address: "${meta.x}"}`, `${meta.x} gives text; a message (acme.Address) takes an object`},
		{`{scores: {1: {points: "${meta.x | sha256}"}}}`, `rules[0].reply.scores.1.points: ${meta.x | sha256} gives bytes; a number field (int64) takes a number or text`},
		{`{avatar: "${meta.x | sha1}", name: "${meta.x | hexenc}", attributes: "${meta.x | fromjson}"}`, ``},
		{`{avatar: "${req.id | tojson}"}`, ``},
	}
	for _, tt := range tests {
		t.Run(tt.reply, func(t *testing.T) {
			got := parseErr(t, "rules:\n  - match: {method: acme.Users/Get}\n    reply: "+tt.reply+"\n")
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
