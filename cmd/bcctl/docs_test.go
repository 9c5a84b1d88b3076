package main

// The examples in README.md and docs/*.md are run by TestDocExamples, so
// what they show is what bcctl does. In a Markdown file:
//
//   - a fenced block whose info string has file=NAME (```yaml file=vote.yaml)
//     is written to NAME in the example's directory; when NAME is a file of
//     the repository (```yaml file=examples/vote.yaml), the block must be
//     that file as it is;
//   - a fenced block with the info string "console run" holds commands
//     ("$ bcctl ...", or "$ go run ./cmd/bcctl ..." as in a checkout,
//     continued with a trailing backslash) each followed by its output:
//     stdout, then stderr, then "[exit N]" when N is not 0;
//   - a fenced block with the info string "console run background" holds
//     one command that runs in the background, as in a terminal of its
//     own, while the rest of the file's examples run (docs_session_test.go).
//     Its output is what that terminal shows over the whole file: stdout
//     and stderr as they are printed, then a line "^C" where the command
//     is interrupted (at the end of the file), what it prints after that,
//     and "[exit N]".
//
// In an output line, "..." matches any text; a line that is only "..."
// matches any number of lines. What varies from run to run is compared by
// its shape, so the examples can show real values (docShape): a time of
// day (03:37:16.993), a timestamp (2026-11-24T03:37:16.993Z), a duration
// (1.4ms, 41.2s, 2m10s), "just now" or "3s ago", and a port of 127.0.0.1
// other than 9000 match any value of the same kind, and a run of two or
// more spaces inside a line (tables) matches any such run.
//
// Every file's examples run in one directory, in order, with stdout a
// terminal (as a person sees them: tables and text, not JSON lines) and
// colors off. The directory holds the schema corpus at internal/corpus and
// the files of examples/, as a checkout does, and in certs/ the TLS
// material of writeTestCerts (ca.pem, server.pem, server-key.pem,
// client.pem, client-key.pem), as a reader's PKI would issue it. The examples call only the
// servers they start themselves, as a reader would (README.md starts
// `bcctl serve --script examples/server.yaml` before its first call): the
// addresses a background bcctl serve is given stand for the ones it really
// listens on (docs_session_test.go), and an example that names
// 127.0.0.1:9000 or localhost:9000 before a serve listens there fails.
// Blocks that are only "console" are shown, not run.

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// docFiles are the files whose examples are run, relative to this package.
var docFiles = []string{"../../README.md", "../../docs/cli.md", "../../docs/exit-codes.md", "../../docs/grpcurl.md", "../../docs/serve.md", "../../docs/proxy.md", "../../docs/sidechannel.md", "../../docs/security.md"}

// docBlock is one fenced block of a Markdown file.
type docBlock struct {
	info string
	line int
	body string
}

func fencedBlocks(text string) []docBlock {
	var out []docBlock
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	n := 0
	var cur *docBlock
	var body strings.Builder
	for sc.Scan() {
		n++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case cur == nil && strings.HasPrefix(trimmed, "```"):
			cur = &docBlock{info: strings.TrimSpace(strings.TrimPrefix(trimmed, "```")), line: n}
			body.Reset()
		case cur != nil && trimmed == "```":
			cur.body = body.String()
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			body.WriteString(line + "\n")
		}
	}
	return out
}

// docMode says how a fenced block's examples run, from its info string.
type docMode int

const (
	docShown         docMode = iota // not run
	docRun                          // "console run"
	docRunBackground                // "console run background"
)

func docModeOf(info string) docMode {
	switch strings.Join(strings.Fields(info), " ") {
	case "console run":
		return docRun
	case "console run background":
		return docRunBackground
	}
	return docShown
}

// docCommand is one "$ bcctl ..." of a console block and what it prints.
type docCommand struct {
	line     int
	args     []string
	want     []string
	wantCode int
	// interrupt is where "^C" is in want: the command is interrupted once
	// it has printed want[:interrupt]; -1 when it is not.
	interrupt int
}

// docPrograms are the ways an example may run bcctl.
var docPrograms = [][]string{{"bcctl"}, {"go", "run", "./cmd/bcctl"}}

func parseConsole(b docBlock, mode docMode) ([]docCommand, error) {
	var cmds []docCommand
	lines := strings.Split(strings.TrimSuffix(b.body, "\n"), "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if !strings.HasPrefix(l, "$ ") {
			if len(cmds) == 0 {
				return nil, fmt.Errorf("line %d: output before the first command", b.line+1+i)
			}
			c := &cmds[len(cmds)-1]
			if m := exitLine.FindStringSubmatch(l); m != nil {
				c.wantCode, _ = strconv.Atoi(m[1])
				continue
			}
			if l == "^C" {
				if mode != docRunBackground || c.interrupt >= 0 {
					return nil, fmt.Errorf("line %d: ^C is for the one command of a \"console run background\" block", b.line+1+i)
				}
				c.interrupt = len(c.want)
				continue
			}
			c.want = append(c.want, l)
			continue
		}
		text := strings.TrimPrefix(l, "$ ")
		start := i
		for strings.HasSuffix(text, "\\") && i+1 < len(lines) {
			i++
			text = strings.TrimSuffix(text, "\\") + " " + strings.TrimSpace(lines[i])
		}
		args, err := shellSplit(text)
		if err != nil {
			return nil, fmt.Errorf("line %d: %v", b.line+1+start, err)
		}
		prog := -1
		for _, p := range docPrograms {
			if len(args) >= len(p) && strings.Join(args[:len(p)], " ") == strings.Join(p, " ") {
				prog = len(p)
				break
			}
		}
		if prog < 0 {
			return nil, fmt.Errorf("line %d: only bcctl commands are run, not %q", b.line+1+start, text)
		}
		cmds = append(cmds, docCommand{line: b.line + 1 + start, args: args[prog:], interrupt: -1})
	}
	if mode == docRunBackground && len(cmds) != 1 {
		return nil, fmt.Errorf("line %d: a \"console run background\" block holds one command, not %d", b.line, len(cmds))
	}
	return cmds, nil
}

var exitLine = regexp.MustCompile(`^\[exit (\d+)\]$`)

// shellSplit splits a command line as a POSIX shell would, for the quoting
// the examples use: single quotes, double quotes with \" and \\, and
// backslash escapes.
func shellSplit(s string) ([]string, error) {
	var args []string
	var cur strings.Builder
	inArg := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated ' in %q", s)
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inArg = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\' || s[i+1] == '$') {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, fmt.Errorf("unterminated \" in %q", s)
			}
			inArg = true
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inArg = true
		default:
			cur.WriteByte(c)
			inArg = true
		}
	}
	if inArg {
		args = append(args, cur.String())
	}
	return args, nil
}

// matchOutput compares got with the expected lines ("..." wildcards).
func matchOutput(want, got []string) bool {
	if len(want) == 0 {
		return len(got) == 0
	}
	if want[0] == "..." {
		for k := 0; k <= len(got); k++ {
			if matchOutput(want[1:], got[k:]) {
				return true
			}
		}
		return false
	}
	return len(got) > 0 && matchLine(want[0], got[0]) && matchOutput(want[1:], got[1:])
}

// matchOutputPrefix reports whether got can still become output that
// matches want: whether got matches the lines of want up to some point.
// Output that only grows and no longer does will never match.
func matchOutputPrefix(want, got []string) bool {
	if len(got) == 0 {
		return true
	}
	if len(want) == 0 {
		return false
	}
	if want[0] == "..." {
		return matchOutputPrefix(want[1:], got) || matchOutputPrefix(want, got[1:])
	}
	return matchLine(want[0], got[0]) && matchOutputPrefix(want[1:], got[1:])
}

// matchLine compares a line with an expected one ("..." matches any text).
func matchLine(want, got string) bool {
	parts := strings.Split(want, "...")
	for i := range parts {
		parts[i] = regexp.QuoteMeta(parts[i])
	}
	return regexp.MustCompile("^" + strings.Join(parts, ".*") + "$").MatchString(got)
}

// docShapes are the kinds of text that vary from run to run, each with
// the token it is compared as (see docShape). Order matters: a timestamp
// holds a time of day, and "3s ago" a duration.
var docShapes = []struct {
	re    *regexp.Regexp
	token string
}{
	{regexp.MustCompile(`\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`), "<timestamp>"},
	{regexp.MustCompile(`\b\d\d:\d\d:\d\d\.\d{3}\b`), "<time>"},
	{regexp.MustCompile(`\bjust now\b|\b\d+(h\d\dm|m\d\ds|s) ago\b`), "<ago>"},
	{regexp.MustCompile(`\b(\d+(\.\d+)?(ns|µs|us|ms|h|m|s))+\b`), "<duration>"},
	{regexp.MustCompile(`(\S)  +`), "$1  "},
}

// docPort is an address on 127.0.0.1. Its port is compared by shape,
// unless it is 9000: the port the examples give the servers they start.
var docPort = regexp.MustCompile(`\b127\.0\.0\.1:\d+\b`)

// docShape rewrites what varies in an output line (times, durations,
// ports, table padding) as a token of its kind, so that a line shown in a
// doc matches the output of any run.
func docShape(line string) string {
	for _, s := range docShapes {
		line = s.re.ReplaceAllString(line, s.token)
	}
	return docPort.ReplaceAllStringFunc(line, func(addr string) string {
		if addr == "127.0.0.1:9000" {
			return addr
		}
		return "127.0.0.1:<port>"
	})
}

// matchDoc compares output with what a doc shows: matchOutput on their
// shapes.
func matchDoc(want, got []string) bool {
	return matchOutput(docShapeAll(want), docShapeAll(got))
}

func docShapeAll(lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = docShape(l)
	}
	return out
}

// matchDocPrefix is matchOutputPrefix on the shapes of want and got.
func matchDocPrefix(want, got []string) bool {
	return matchOutputPrefix(docShapeAll(want), docShapeAll(got))
}

func TestDocExamples(t *testing.T) {
	for _, file := range docFiles {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			s := newDocSession(t, file)
			ran := 0
			for _, b := range fencedBlocks(string(data)) {
				for _, f := range strings.Fields(b.info) {
					if name, ok := strings.CutPrefix(f, "file="); ok {
						s.writeFile(b, name)
					}
				}
				mode := docModeOf(b.info)
				if mode == docShown {
					continue
				}
				cmds, err := parseConsole(b, mode)
				if err != nil {
					t.Fatalf("%s: %v", file, err)
				}
				for _, c := range cmds {
					if mode == docRunBackground {
						s.start(c)
					} else {
						s.run(c)
					}
					ran++
				}
			}
			s.stopAll()
			if ran == 0 && filepath.Base(file) != "README.md" {
				t.Errorf("%s has no examples to run", file)
			}
		})
	}
}

func TestShellSplit(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{`bcctl call -d '{"id": "1"}' x`, []string{"bcctl", "call", "-d", `{"id": "1"}`, "x"}},
		{`a "b \"c\"" d\ e`, []string{"a", `b "c"`, "d e"}},
		{`-H 'x-transaction: 7'`, []string{"-H", "x-transaction: 7"}},
	} {
		got, err := shellSplit(tc.in)
		if err != nil || strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("shellSplit(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	if !matchOutput([]string{"a", "...", "x ... z"}, []string{"a", "b", "c", "x y z"}) {
		t.Error("wildcards do not match")
	}
	if matchOutput([]string{"a"}, []string{"a", "b"}) {
		t.Error("extra output matched")
	}
}

func TestDocShape(t *testing.T) {
	for _, tc := range []struct {
		doc, got string
		match    bool
	}{
		{"03:37:16.993 peer 1 joined from 127.0.0.1:58438", "14:02:08.120 peer 1 joined from 127.0.0.1:40001", true},
		{"03:37:16.993 peer 1 joined from 127.0.0.1:58438", "14:02:08.120 peer 2 joined from 127.0.0.1:40001", false},
		{"#2 reverse X to peer 1: OK 1.4ms (made by admin)", "#2 reverse X to peer 1: OK 12ms (made by admin)", true},
		{"#2 reverse X to peer 1: OK 1.4ms (made by admin)", "#3 reverse X to peer 1: OK 12ms (made by admin)", false},
		{"stopped (interrupted) after 41.2s: 1 forward calls", "stopped (interrupted) after 2m10.5s: 1 forward calls", true},
		{"stopped (interrupted) after 41.2s: 1 forward calls", "stopped (interrupted) after 41.2s: 2 forward calls", false},
		{`"connectedAt": "2026-11-24T03:37:16.993170Z",`, `"connectedAt": "2027-01-02T10:00:00.5+01:00",`, true},
		{"1   127.0.0.1:58438  just now   1    1    forward M OK just now  S", "1   127.0.0.1:40001  3s ago   1    1    forward M OK 2s ago  S", true},
		{"1   127.0.0.1:58438  just now   1    1    forward M OK just now  S", "1   127.0.0.1:40001  3s ago   1    2    forward M OK 2s ago  S", false},
		{"ID  ADDRESS  CONNECTED", "ID      ADDRESS    CONNECTED", true},
		{"ID  ADDRESS  CONNECTED", "ID ADDRESS  CONNECTED", false},
		{"listening on 127.0.0.1:9000 (gRPC)", "listening on 127.0.0.1:9001 (gRPC)", false},
		{"  ok   expect[0] (vote.yaml:24): got 2", "  ok   expect[0] (vote.yaml:23): got 2", false},
		{"    request:  {}", "  request:  {}", false},
	} {
		if got := matchDoc([]string{tc.doc}, []string{tc.got}); got != tc.match {
			t.Errorf("%q matches %q: %v, want %v (shapes %q, %q)", tc.doc, tc.got, got, tc.match, docShape(tc.doc), docShape(tc.got))
		}
	}
}

func TestMatchOutputPrefix(t *testing.T) {
	want := []string{"a", "...", "c", "d"}
	for _, tc := range []struct {
		got  []string
		can  bool
		full bool
	}{
		{nil, true, false},
		{[]string{"a"}, true, false},
		{[]string{"a", "x", "y"}, true, false},
		{[]string{"a", "x", "c"}, true, false},
		{[]string{"a", "c", "d"}, true, true},
		{[]string{"b"}, false, false},
		{[]string{"a", "c", "d", "e"}, true, false}, // "..." may still take c and d
	} {
		if can := matchOutputPrefix(want, tc.got); can != tc.can {
			t.Errorf("matchOutputPrefix(%q, %q) = %v, want %v", want, tc.got, can, tc.can)
		}
		if full := matchOutput(want, tc.got); full != tc.full {
			t.Errorf("matchOutput(%q, %q) = %v, want %v", want, tc.got, full, tc.full)
		}
	}
	if matchOutputPrefix([]string{"a", "b"}, []string{"a", "b", "c"}) {
		t.Error("output longer than the example can still match")
	}
}

func TestParseConsole(t *testing.T) {
	bg := docBlock{info: "console run background", line: 10, body: "$ go run ./cmd/bcctl serve \\\n    --listen 127.0.0.1:9000\nlistening\n...\n^C\nstopped\n[exit 3]\n"}
	cmds, err := parseConsole(bg, docModeOf(bg.info))
	if err != nil {
		t.Fatal(err)
	}
	c := cmds[0]
	if len(cmds) != 1 || strings.Join(c.args, " ") != "serve --listen 127.0.0.1:9000" || c.line != 11 ||
		strings.Join(c.want, "|") != "listening|...|stopped" || c.interrupt != 2 || c.wantCode != 3 {
		t.Errorf("parsed %+v", cmds)
	}
	run := docBlock{info: "console run", line: 1, body: "$ bcctl version\nv1\n"}
	if cmds, err := parseConsole(run, docModeOf(run.info)); err != nil || cmds[0].interrupt != -1 {
		t.Errorf("parsed %+v, %v", cmds, err)
	}
	for _, tc := range []struct {
		info, body, err string
	}{
		{"console run", "$ bcctl connect x\n^C\n", "^C is for the one command"},
		{"console run background", "$ bcctl serve\n^C\n^C\n", "^C is for the one command"},
		{"console run background", "$ bcctl serve\n$ bcctl peers x\n", "holds one command, not 2"},
		{"console run", "$ ls\n", `only bcctl commands are run, not "ls"`},
		{"console run", "$ go run ./cmd/other\n", "only bcctl commands are run"},
	} {
		b := docBlock{info: tc.info, line: 1, body: tc.body}
		if _, err := parseConsole(b, docModeOf(tc.info)); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s block %q: error %v, want %q", tc.info, tc.body, err, tc.err)
		}
	}
	if docModeOf("console") != docShown || docModeOf("yaml file=x.yaml") != docShown {
		t.Error("a block that is only shown would run")
	}
}
