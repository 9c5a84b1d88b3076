package script

import (
	"bufio"
	"context"
	"os"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	"github.com/bcctl/bcctl/internal/calls"
)

// docBlock is one fenced code block of docs/script.md.
type docBlock struct {
	line int    // line of the opening fence
	lang string // "yaml", "text"
	attr string // "example=vote", "invalid=x", "output=vote", ""
	body string
}

func readDocBlocks(t *testing.T, path string) []docBlock {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var blocks []docBlock
	var cur *docBlock
	var body strings.Builder
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.HasPrefix(line, "```") {
			if cur == nil {
				info := strings.Fields(strings.TrimPrefix(line, "```"))
				cur = &docBlock{line: n}
				if len(info) > 0 {
					cur.lang = info[0]
				}
				if len(info) > 1 {
					cur.attr = info[1]
				}
				body.Reset()
				continue
			}
			cur.body = body.String()
			blocks = append(blocks, *cur)
			cur = nil
			continue
		}
		if cur != nil {
			body.WriteString(line)
			body.WriteString("\n")
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cur != nil {
		t.Fatalf("%s:%d: unclosed code block", path, cur.line)
	}
	return blocks
}

// pairEngines runs s as an upstream and as a downstream engine whose call
// steps reach each other in process.
func pairEngines(t *testing.T, s *Script, env func(string) string) (up, down *Engine) {
	t.Helper()
	sc := loadTestSchema(t)
	down = NewEngine(s, Downstream, Options{Env: env})
	up = NewEngine(s, Upstream, Options{Env: env, Caller: CallerFunc(func(_ context.Context, from calls.Peer, to string) ([]Target, error) {
		return []Target{{Peer: from, Conn: &engineConn{engine: down, schema: sc}}}, nil
	})})
	return up, down
}

// docExamples run the blocks marked `yaml example=NAME`; what they return
// must equal the block marked `text output=NAME`, when there is one.
var docExamples = map[string]func(t *testing.T, s *Script) string{
	"vote": func(t *testing.T, s *Script) string {
		up, down := pairEngines(t, s, nil)
		var ev events
		down.opts.Observer = &ev
		c := newCall(t, "gitaly.OperationService/UserCreateBranch", transaction(`{"id": 7, "node": "gitaly-1", "primary": true}`), `{"branch_name": "ZmVhdHVyZS94", "start_point": "bWFpbg=="}`)
		got, st := answer(t, up, c)
		if st.Code() != codes.OK || len(got) != 1 || got[0] != `{"branch":{"name":"ZmVhdHVyZS94","target_commit":{"id":"main"}}}` {
			t.Fatalf("feature branch: got %v %v", got, st)
		}
		var votes []string
		for _, e := range ev.all() {
			votes = append(votes, toJSON(t, e.Requests[0]))
		}
		const hash = `"reference_updates_hash":"RSOSVKq0gMJxz57CCGNPofflEfA="` // SHA-1 of feature/x
		if want := []string{
			`{"node":"gitaly-1","phase":"PREPARED_PHASE",` + hash + `,"transaction_id":"7"}`,
			`{"node":"gitaly-1","phase":"COMMITTED_PHASE",` + hash + `,"transaction_id":"7"}`,
		}; strings.Join(votes, "\n") != strings.Join(want, "\n") {
			t.Errorf("votes:\n%s\nwant:\n%s", strings.Join(votes, "\n"), strings.Join(want, "\n"))
		}
		if rep := up.Check(); !rep.OK() {
			t.Errorf("upstream expectations:\n%s", rep)
		}
		if rep := down.Check(); !rep.OK() {
			t.Errorf("downstream expectations:\n%s", rep)
		}
		c = newCall(t, "gitaly.OperationService/UserCreateBranch", transaction(`{"id": 8, "node": "gitaly-1", "primary": true}`), `{"branch_name": "bWFpbg=="}`)
		_, st = answer(t, up, c)
		if st.Code() != codes.Unimplemented {
			t.Fatalf("main: got %v, want UNIMPLEMENTED", st)
		}
		return st.Message()
	},
	"details": func(t *testing.T, s *Script) string {
		e := NewEngine(s, Upstream, Options{})
		c := newCall(t, "acme.Users/Get", metadata.Pairs("x-trace-id", "t-1"), `{}`)
		_, st := answer(t, e, c)
		if st.Code() != codes.InvalidArgument || st.Message() != "id is required (trace t-1)" || len(st.Details()) != 2 {
			t.Errorf("got %v with %d details", st, len(st.Details()))
		}
		if len(c.trailer.Get("x-error-id")[0]) != 36 {
			t.Errorf("trailer x-error-id: %v", c.trailer)
		}
		return ""
	},
	"retries": func(t *testing.T, s *Script) string {
		e := NewEngine(s, Upstream, Options{})
		for _, want := range []string{"attempt 1 failed, try again", "attempt 2 failed, try again"} {
			if _, st := answer(t, e, newCall(t, "acme.Users/Get", nil, `{"id": "3"}`)); st.Code() != codes.Unavailable || st.Message() != want {
				t.Errorf("got %v, want UNAVAILABLE %q", st, want)
			}
		}
		got, st := answer(t, e, newCall(t, "acme.Users/Get", nil, `{"id": "3"}`))
		if st.Code() != codes.OK || got[0] != `{"id":"3","name":"ok after retries"}` {
			t.Errorf("third call: %v %v", got, st)
		}
		if rep := e.Check(); !rep.OK() {
			t.Errorf("expectations:\n%s", rep)
		}
		return ""
	},
	"streams": func(t *testing.T, s *Script) string {
		e := NewEngine(s, Upstream, Options{})
		got, st := answer(t, e, newCall(t, "acme.Users/Chat", nil, `{"text": "a"}`, `{"text": "b"}`))
		want := `{"from":"bot","text":"hello"}|{"from":"bot","text":"you said a (#0)"}|{"from":"bot","text":"you said b (#1)"}|{"from":"bot","text":"bye after a"}`
		if st.Code() != codes.OK || strings.Join(got, "|") != want {
			t.Errorf("chat: got %v %v\nwant %s", got, st, want)
		}
		got, st = answer(t, e, newCall(t, "acme.Users/Import", nil, `{"id": "1"}`, `{"id": "2"}`))
		if st.Code() != codes.OK || got[0] != `{"imported":1,"skipped_ids":["1","2"]}` {
			t.Errorf("import: got %v %v", got, st)
		}
		return ""
	},
	"templates": func(t *testing.T, s *Script) string {
		e := NewEngine(s, Upstream, Options{Env: func(k string) string { return "env:" + k }})
		got, st := answer(t, e, newCall(t, "acme.Users/Get", metadata.Pairs("x-user", "ann"), `{"id": "5"}`))
		if st.Code() != codes.OK || len(got) != 1 {
			t.Fatalf("got %v %v", got, st)
		}
		for _, want := range []string{`"id":"5"`, `"name":"hello ann, call 1"`, `"groups":["7","127.0.0.1:5555"]`, `"request":{"id":"5"}`, `"calls":1,`, `"env":"env:BCCTL_DOC_EXAMPLE"`} {
			if !strings.Contains(got[0], want) {
				t.Errorf("reply %s lacks %s", got[0], want)
			}
		}
		return ""
	},
	"where": func(t *testing.T, s *Script) string {
		e := NewEngine(s, Upstream, Options{})
		req := `{"reference_updates_hash": "qZk+NkcGgWq6PiVxeFDCbJzQ2J0="}`
		got, st := answer(t, e, newCall(t, "gitaly.RefTransaction/VoteTransaction", transaction(`{"id": 1, "node": "gitaly-1", "primary": true}`), req))
		if st.Code() != codes.OK || got[0] != `{}` {
			t.Errorf("primary: got %v %v", got, st)
		}
		_, st = answer(t, e, newCall(t, "gitaly.RefTransaction/VoteTransaction", transaction(`{"id": 1, "node": "gitaly-2", "primary": false}`), req))
		return st.Message()
	},
	"functions": func(t *testing.T, s *Script) string {
		up, down := pairEngines(t, s, nil)
		var ev events
		down.opts.Observer = &ev
		got, st := answer(t, up, newCall(t, "acme.Users/Get", transaction(`{"id":42,"node":"gitaly-1","primary":true}`), `{"id": "u-1"}`))
		if st.Code() != codes.OK || got[0] != `{"id":"u-1","name":"voted as gitaly-1"}` {
			t.Errorf("got %v %v", got, st)
		}
		votes := ev.all()
		if len(votes) != 1 {
			t.Fatalf("got %d votes, want 1", len(votes))
		}
		return toJSON(t, votes[0].Requests[0])
	},
	"bytes": func(t *testing.T, s *Script) string {
		e := NewEngine(s, Upstream, Options{})
		got, st := answer(t, e, newCall(t, "gitaly.RefTransaction/VoteTransaction", nil, `{"reference_updates_hash": "AAAAAAAAAAAAAAAAAAAAAAAAAAA=", "node": "gitaly-1"}`))
		if st.Code() != codes.OK || got[0] != `{"state":"ABORT"}` {
			t.Errorf("zero hash: got %v %v", got, st)
		}
		got, st = answer(t, e, newCall(t, "gitaly.RefTransaction/VoteTransaction", nil, `{"reference_updates_hash": "AAE=", "node": "gitaly-1"}`))
		if st.Code() != codes.OK || got[0] != `{}` {
			t.Errorf("text node: got %v %v", got, st)
		}
		c := newCall(t, "acme.Users/Get", nil, `{}`)
		got, st = answer(t, e, c)
		if want := `{"avatar":"iVBORw0KGgo=","groups":["dev","4b825dc642cb6eb9a060e54bf8d69288fbee4904"]}`; st.Code() != codes.OK || got[0] != want {
			t.Errorf("Get: got %v %v, want %s", got, st, want)
		}
		if got, want := c.header.Get("x-tree-bin"), "\x4b\x82\x5d\xc6\x42\xcb\x6e\xb9\xa0\x60\xe5\x4b\xf8\xd6\x92\x88\xfb\xee\x49\x04"; len(got) != 1 || got[0] != want {
			t.Errorf("x-tree-bin: got %q, want %q", got, want)
		}
		return ""
	},
	"expect": func(t *testing.T, s *Script) string {
		e := NewEngine(s, Upstream, Options{})
		for i := 0; i < 2; i++ {
			if _, st := answer(t, e, newCall(t, "acme.Users/Get", nil, `{}`)); st.Code() != codes.OK {
				t.Fatal(st)
			}
		}
		e.Count(calls.Record{Dir: calls.Reverse, Method: "gitaly.RefTransaction/VoteTransaction", Peer: 7})
		return e.Check().String()
	},
}

// TestDocs loads every YAML block of docs/script.md against the test
// schema, runs the examples, and compares outputs and errors with the
// text blocks that show them.
func TestDocs(t *testing.T) {
	const path = "../../docs/script.md"
	blocks := readDocBlocks(t, path)
	outputs := map[string]string{}
	for _, b := range blocks {
		if b.lang == "text" && strings.HasPrefix(b.attr, "output=") {
			outputs[strings.TrimPrefix(b.attr, "output=")] = strings.TrimSuffix(b.body, "\n")
		}
	}
	seen := map[string]bool{}
	yamlBlocks := 0
	for _, b := range blocks {
		if b.lang != "yaml" {
			continue
		}
		yamlBlocks++
		key, name, _ := strings.Cut(b.attr, "=")
		file := name + ".yaml"
		if name == "" {
			file = "docs-line-" + strconv.Itoa(b.line) + ".yaml"
		}
		t.Run(file, func(t *testing.T) {
			s, err := Parse(context.Background(), file, []byte(b.body), Config{Upstream: loadTestSchema(t)})
			var got string
			switch key {
			case "invalid":
				if err == nil {
					t.Fatalf("%s:%d: the invalid example loads", path, b.line)
				}
				got = err.Error()
			default:
				if err != nil {
					t.Fatalf("%s:%d: %v", path, b.line, err)
				}
				if key == "example" {
					run, ok := docExamples[name]
					if !ok {
						t.Fatalf("%s:%d: example %q has no runner in docExamples", path, b.line, name)
					}
					got = run(t, s)
				}
			}
			if name != "" {
				seen[name] = true
			}
			if want, ok := outputs[name]; ok && got != want {
				t.Errorf("%s: output of %s:\n%s\nwant (as the docs show):\n%s", path, name, got, want)
			}
		})
	}
	if yamlBlocks < 10 {
		t.Errorf("found %d yaml blocks in %s; the parser is probably broken", yamlBlocks, path)
	}
	for name := range docExamples {
		if !seen[name] {
			t.Errorf("docExamples has %q, which %s does not contain", name, path)
		}
	}
	for name := range outputs {
		if !seen[name] {
			t.Errorf("%s shows output=%s for no example", path, name)
		}
	}
}
