package script

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
)

// TestBytesFormsInValues checks every raw-bytes form in bytes and string
// fields, lists and maps of a reply, next to text (the default).
func TestBytesFormsInValues(t *testing.T) {
	tests := []struct {
		name  string
		reply string
		want  string
	}{
		{"text is its UTF-8 bytes", `{avatar: main}`, `{"avatar":"bWFpbg=="}`},
		{"base64", `{avatar: {base64: "AP8="}}`, `{"avatar":"AP8="}`},
		{"base64 unpadded", `{avatar: {base64: "AP8"}}`, `{"avatar":"AP8="}`},
		{"base64 URL alphabet", `{avatar: {base64: "-_8"}}`, `{"avatar":"+/8="}`},
		{"base64 over lines", "{avatar: {base64: \"bWFp\n      bg==\"}}", `{"avatar":"bWFpbg=="}`},
		{"copied from protobuf JSON", `{avatar: {base64: "bWFpbg=="}}`, `{"avatar":"bWFpbg=="}`},
		{"hex", `{avatar: {hex: "00ff"}}`, `{"avatar":"AP8="}`},
		{"hex upper case with spaces", `{avatar: {hex: "6D 61 69 6E"}}`, `{"avatar":"bWFpbg=="}`},
		{"binary tag", `{avatar: !!binary "AP8="}`, `{"avatar":"AP8="}`},
		{"empty hex", `{avatar: {hex: ""}}`, `{}`},
		{"text field from base64", `{name: {base64: "bWFpbg=="}}`, `{"name":"main"}`},
		{"text field from hex", `{name: {hex: "6d61696e"}}`, `{"name":"main"}`},
		{"repeated strings", `{groups: [{hex: "6131"}, b2]}`, `{"groups":["a1","b2"]}`},
		{"a map of strings", `{labels: {team: {base64: "Y29yZQ=="}}}`, `{"labels":{"team":"core"}}`},
		{"in a Struct a mapping stays a mapping", `{attributes: {k: {hex: "00"}}}`, `{"attributes":{"k":{"hex":"00"}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := parse(t, "rules:\n  - match: {method: acme.Users/Get}\n    reply: "+tt.reply+"\n")
			got, st := answer(t, NewEngine(s, Upstream, Options{}), newCall(t, "acme.Users/Get", nil, `{}`))
			if st.Code() != codes.OK || len(got) != 1 || got[0] != tt.want {
				t.Errorf("%s: got %v %v, want %s", tt.reply, got, st, tt.want)
			}
		})
	}
}

// TestBytesFormsInMatchers checks raw-bytes forms as matchers: exact bytes
// at bytes fields (also inside one_of, not and contains), text at string
// fields and metadata.
func TestBytesFormsInMatchers(t *testing.T) {
	s := parse(t, `
rules:
  - name: hex
    match: {method: gitaly.RefTransaction/VoteTransaction, request: {reference_updates_hash: {hex: a9993e364706816aba3e25717850c26c9cd0d89d}}}
    reply: {state: COMMIT}
  - name: one-of
    match: {method: gitaly.RefTransaction/VoteTransaction, request: {reference_updates_hash: {one_of: [{base64: "AP8="}, !!binary "AAE="]}}}
    reply: {state: ABORT}
  - name: not-text
    match: {method: gitaly.RefTransaction/VoteTransaction, request: {reference_updates_hash: {not: {hex: ""}}, node: {hex: "6e31"}}}
    reply: {state: STOP}
  - name: bin-metadata
    match: {method: acme.Users/Get, metadata: {x-key-bin: {hex: "00ff"}}}
    reply: {name: bin}
`)
	e := NewEngine(s, Upstream, Options{})
	tests := []struct {
		method, req string
		md          metadata.MD
		want        string // the reply, or the UNIMPLEMENTED message
	}{
		{"gitaly.RefTransaction/VoteTransaction", `{"reference_updates_hash": "qZk+NkcGgWq6PiVxeFDCbJzQ2J0="}`, nil, `{}`},
		{"gitaly.RefTransaction/VoteTransaction", `{"reference_updates_hash": "AP8="}`, nil, `{"state":"ABORT"}`},
		{"gitaly.RefTransaction/VoteTransaction", `{"reference_updates_hash": "AAE="}`, nil, `{"state":"ABORT"}`},
		{"gitaly.RefTransaction/VoteTransaction", `{"reference_updates_hash": "AAI=", "node": "n1"}`, nil, `{"state":"STOP"}`},
		{"gitaly.RefTransaction/VoteTransaction", `{"node": "n1"}`, nil,
			`no rule matched gitaly.RefTransaction/VoteTransaction; closest: "not-text" (test.yaml:9): request.reference_updates_hash is "", which the ` + "`not`" + ` matcher excludes`},
		{"gitaly.RefTransaction/VoteTransaction", `{"reference_updates_hash": "AAI=", "node": "n2"}`, nil,
			`no rule matched gitaly.RefTransaction/VoteTransaction; closest: "not-text" (test.yaml:9): request.node is "n2", want "n1"`},
		{"acme.Users/Get", `{}`, metadata.Pairs("x-key-bin", "\x00\xff"), `{"name":"bin"}`},
		{"acme.Users/Get", `{}`, metadata.Pairs("x-key-bin", "\x00\xfe"),
			`no rule matched acme.Users/Get; closest: "bin-metadata" (test.yaml:12): metadata x-key-bin is {hex: 00fe}, want {hex: 00ff}`},
	}
	for _, tt := range tests {
		got, st := answer(t, e, newCall(t, tt.method, tt.md, tt.req))
		if st.Code() == codes.Unimplemented {
			got = []string{st.Message()}
		}
		if len(got) != 1 || got[0] != tt.want {
			t.Errorf("%s %s: got %v %v, want %s", tt.method, tt.req, got, st, tt.want)
		}
	}
	// A miss on raw bytes shows them as a script would write them.
	s = parse(t, "rules:\n  - {name: h, match: {method: gitaly.RefTransaction/VoteTransaction, request: {reference_updates_hash: {hex: 00ff}}}, reply: {}}\n")
	_, st := answer(t, NewEngine(s, Upstream, Options{}), newCall(t, "gitaly.RefTransaction/VoteTransaction", nil, `{"reference_updates_hash": "AP4="}`))
	if want := `request.reference_updates_hash is {hex: 00fe}, want {hex: 00ff}`; !strings.HasSuffix(st.Message(), want) {
		t.Errorf("got %q, want it to end %q", st.Message(), want)
	}
}

// TestBytesFormsInMetadataAndVars checks raw bytes in headers, trailers
// and call metadata (raw for -bin keys), and in vars, which templates then
// read as bytes.
func TestBytesFormsInMetadataAndVars(t *testing.T) {
	s := parse(t, `
vars:
  hash: {hex: "00ff"}
  name: {base64: "bWFpbg=="}
  tag: !!binary "AAE="
rules:
  - match: {method: acme.Users/Get}
    headers:
      x-raw-bin: {hex: "00ff"}
      x-copy-bin: "${meta.x-in-bin}"
      x-text: [{base64: "b2s="}, plain]
      x-hash-bin: "${vars.hash | sha1}"
    trailers: {x-vars-bin: "${vars.tag}"}
    reply:
      avatar: "${vars.hash}"
      name: "${vars.name} ${vars.hash | hexenc}"
      groups: ["${vars.tag | b64enc}"]
`)
	c := newCall(t, "acme.Users/Get", metadata.Pairs("x-in-bin", "\x01\x02"), `{}`)
	got, st := answer(t, NewEngine(s, Upstream, Options{}), c)
	if want := `{"avatar":"AP8=","groups":["AAE="],"name":"main 00ff"}`; st.Code() != codes.OK || len(got) != 1 || got[0] != want {
		t.Fatalf("got %v %v, want %s", got, st, want)
	}
	for key, want := range map[string]string{"x-raw-bin": "\x00\xff", "x-copy-bin": "\x01\x02", "x-text": "ok,plain", "x-hash-bin": "\xaa\x3e\x5d\xcd\xd7\x7b\x15\x3f\x2e\x59\xbd\x0d\x87\x94\xfd\xe3\x3c\xb4\xe4\x86"} {
		if got := strings.Join(c.header.Get(key), ","); got != want {
			t.Errorf("header %s: got %q, want %q", key, got, want)
		}
	}
	if got := strings.Join(c.trailer.Get("x-vars-bin"), ","); got != "\x00\x01" {
		t.Errorf("trailer x-vars-bin: got %q", got)
	}
}

// TestBytesFormLoadErrors checks that malformed raw-bytes forms, and raw
// bytes where they cannot go, are load errors with the field path.
func TestBytesFormLoadErrors(t *testing.T) {
	tests := []struct {
		src  string
		want string
	}{
		{`{reply: {avatar: {hex: "zz"}}}`, `rules[0].reply.avatar: {hex: "zz"} is not hexadecimal: encoding/hex: invalid byte: U+007A 'z'`},
		{`{reply: {avatar: {hex: "abc"}}}`, `{hex: "abc"} is not hexadecimal: encoding/hex: odd length hex string`},
		{`{reply: {avatar: {base64: "@@"}}}`, `rules[0].reply.avatar: {base64: "@@"} is not base64`},
		{`{reply: {avatar: !!binary "@@"}}`, `rules[0].reply.avatar: !!binary "@@" is not base64`},
		{`{reply: {avatar: {hex: 1234}}}`, ``}, // digits are hex digits
		{`{reply: {avatar: {hex: null}}}`, `rules[0].reply.avatar: {hex: ...} takes a string, not null`},
		{`{reply: {avatar: {hex: [a]}}}`, `{hex: ...} takes a string, not a list`},
		{`{reply: {avatar: {base64: "${req.id}"}}}`, `{base64: ...} is a literal; to decode a value at run time write ${... | b64dec}`},
		{`{reply: {avatar: {hex: "${req.id}"}}}`, `write ${... | hexdec}`},
		{`{reply: {avatar: {text: "x"}}}`, `rules[0].reply.avatar is bytes: write text, !!binary, {base64: ...} or {hex: ...}, not a mapping`},
		{`{reply: {avatar: {hex: "00", base64: "AA=="}}}`, `rules[0].reply.avatar is bytes: write text, !!binary, {base64: ...} or {hex: ...}, not a mapping`},
		{`{reply: {name: {hex: "ff"}}}`, `rules[0].reply.name: a string holds UTF-8 text, and these bytes (ff) are not`},
		{`{match: {method: acme.Users/Get, request: {id: {hex: "ff"}}}, reply: {}}`, `rules[0].match.request.id: a string holds UTF-8 text, and these bytes (ff) are not`},
		{`{match: {method: acme.Users/List, request: {limit: {hex: "01"}}}, stream: []}`, `rules[0].match.request.limit is a uint32: raw bytes (!!binary, {base64: ...}, {hex: ...}) match only bytes and string fields`},
		{`{headers: {x-text: {hex: "00"}}, reply: {}}`, `rules[0].headers.x-text: "x-text" does not end in -bin, so its values are printable ASCII, and these bytes ({hex: 00}) are not`},
		{`{headers: {x-ok-bin: {hex: "00"}, x-ok: {hex: "41"}}, reply: {}}`, ``},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			src := tt.src
			if !strings.Contains(src, "match:") {
				src = "{match: {method: acme.Users/Get}, " + src[1:]
			}
			got := parseErr(t, "rules:\n  - "+src+"\n")
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
	if got, want := parseErr(t, "vars: {h: {hex: xx}}\n"), `test.yaml:1:11: vars: {hex: "xx"} is not hexadecimal`; !strings.Contains(got, want) {
		t.Errorf("vars: got %s, want it to contain %s", got, want)
	}
}
