package script

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
)

// TestLiteralDollarBrace: `$${` is a literal `${` in every string of a
// script, templates or not, values or matchers; so a script can answer and
// match any text (bcctl proxy --record escapes each `${` it saw so).
func TestLiteralDollarBrace(t *testing.T) {
	s := parse(t, `
rules:
  - name: request
    match: {method: acme.Users/Get, request: {id: "a$${b}"}}
    reply:
      id: "a$${b}"
      name: "${req.id} $${c}"
      avatar: "$${d}"
      groups: ["$${e}", {base64: "JHtmfQ=="}]
      labels: {k: "$${g}"}
      attributes: {free: "$${h}", list: ["$${i}"]}
      nickname: "$${j}"
  - name: operators
    match: {method: acme.Users/Get, request: {id: {re: "^x\\$${", contains: "$${y", glob: "x$${*"}}}
    reply: {name: operators}
  - name: metadata
    match: {method: acme.Users/Get, metadata: {x-tag: "$${m}"}}
    reply: {name: metadata}
  - name: struct
    match: {method: acme.Users/Import, request: {attributes: {k: "$${s}", l: ["$${t}"]}}}
    end: [{reply: {imported: 1}}]
`)
	e := NewEngine(s, Upstream, Options{})
	tests := []struct {
		name, method string
		md           metadata.MD
		req, want    string
	}{
		{"request and values", "acme.Users/Get", nil, `{"id": "a${b}"}`,
			`{"attributes":{"free":"${h}","list":["${i}"]},"avatar":"JHtkfQ==","groups":["${e}","${f}"],"id":"a${b}","labels":{"k":"${g}"},"name":"a${b} ${c}","nickname":"${j}"}`}, // avatar: the bytes of ${d}
		{"re, contains and glob", "acme.Users/Get", nil, `{"id": "x${y}"}`, `{"name":"operators"}`},
		{"metadata", "acme.Users/Get", metadata.Pairs("x-tag", "${m}"), `{}`, `{"name":"metadata"}`},
		{"free-form data", "acme.Users/Import", nil, `{"attributes": {"k": "${s}", "l": ["${t}"]}}`, `{"imported":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, st := answer(t, e, newCall(t, tt.method, tt.md, tt.req))
			if st.Code() != codes.OK || len(got) != 1 || got[0] != tt.want {
				t.Errorf("got %v %v, want %s", got, st, tt.want)
			}
		})
	}
	// The escape is the literal text, not a pattern: `$${b}` does not
	// match the text `$${b}`.
	_, st := answer(t, e, newCall(t, "acme.Users/Get", nil, `{"id": "a$${b}"}`))
	if st.Code() != codes.Unimplemented || !strings.Contains(st.Message(), `request.id is "a$${b}", want "a${b}"`) {
		t.Errorf("a$${b}: got %v, want UNIMPLEMENTED naming the literal a${b}", st)
	}
}

// TestTemplateInMatcherIsALoadError: a matcher holds literal text only, so
// `${` in one is a load error that says how to write it literally.
func TestTemplateInMatcherIsALoadError(t *testing.T) {
	for _, m := range []string{
		`request: {id: "${req.id}"}`,
		`request: {id: {re: "^${x}"}}`,
		`request: {id: {contains: "${x}"}}`,
		`metadata: {x-tag: "a${b}"}`,
	} {
		err := parseErr(t, "rules:\n  - match: {method: acme.Users/Get, "+m+"}\n    reply: {}\n")
		if !strings.Contains(err, "templates are not allowed in matchers (write $${ for a literal ${)") {
			t.Errorf("%s: got %q, want the template refused", m, err)
		}
	}
}

// TestHasTemplateReadsAsParseTemplate: whether a string is a template is
// decided as parseTemplate reads it.
func TestHasTemplateReadsAsParseTemplate(t *testing.T) {
	for _, s := range []string{"", "$", "${a}", "$${a}", "$$${a}", "$$$${a}", "a$$b", "$$", "x$${y} ${n}", "${", "$$${"} {
		tmpl, err := parseTemplate(s)
		refs := err != nil
		if err == nil {
			for _, p := range tmpl.parts {
				refs = refs || p.ref != nil
			}
		}
		if got := hasTemplate(s); got != refs {
			t.Errorf("hasTemplate(%q) = %v, but parseTemplate finds references: %v", s, got, refs)
		}
		if !refs && tmpl.parts[0].lit != unescape(s) {
			t.Errorf("unescape(%q) = %q, parseTemplate reads %q", s, unescape(s), tmpl.parts[0].lit)
		}
	}
}
