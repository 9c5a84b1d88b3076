package script

import (
	"strings"
	"testing"

	"google.golang.org/grpc/metadata"
)

// TestDocsFunctionLines evaluates every line of docs/script.md's
// `text eval` block (EXPRESSION → VALUE) against the call the docs
// describe, and compares the value as the docs write it.
func TestDocsFunctionLines(t *testing.T) {
	var lines []string
	for _, b := range readDocBlocks(t, "../../docs/script.md") {
		if b.lang == "text" && b.attr == "eval" {
			lines = append(lines, strings.Split(strings.TrimSpace(b.body), "\n")...)
		}
	}
	if len(lines) < len(tfuncs) {
		t.Fatalf("docs/script.md evaluates %d expressions; want at least one per function (%d)", len(lines), len(tfuncs))
	}
	md := metadata.Join(transaction(`{"id":42,"node":"gitaly-1","primary":true}`), metadata.Pairs("x-text", "abc", "x-b64", "bWFpbg=="))
	sc := loadTestSchema(t)
	input := sc.method(t, "acme.Users/Get").Input()
	used := map[string]bool{}
	for _, line := range lines {
		expr, want, ok := strings.Cut(line, "→")
		if !ok {
			t.Errorf("line %q has no →", line)
			continue
		}
		expr, want = strings.TrimSpace(expr), strings.TrimSpace(want)
		tmpl, err := parseTemplate(expr)
		if err == nil {
			err = (&tenv{input: input, call: true}).check(tmpl)
		}
		if err != nil || !tmpl.whole() {
			t.Errorf("%s: %v", expr, err)
			continue
		}
		for _, st := range tmpl.parts[0].ref.stages {
			used[st.fn.name] = true
		}
		s := &scope{req: newView(msg(t, input, `{"id": "u-1"}`), sc.Types()), md: md}
		v, err := s.render(tmpl)
		if err != nil {
			t.Errorf("%s: %v", expr, err)
			continue
		}
		if got := docValue(v); got != want {
			t.Errorf("%s\n got %s\nwant %s (as the docs show)", expr, got, want)
		}
	}
	for _, f := range tfuncs {
		if !used[f.name] {
			t.Errorf("docs/script.md has no evaluated example of %s", f.name)
		}
	}
}

// docValue writes a value as docs/script.md shows results: JSON, with
// bytes marked as such and absent values named.
func docValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "absent"
	case bytesVal:
		if isPrintableText(x) {
			return "bytes " + show(string(x))
		}
		return "bytes " + showBytes(x)
	}
	return show(v)
}
