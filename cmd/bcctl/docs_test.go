package main

// The examples in README.md and docs/*.md are run by TestDocExamples, so
// what they show is what bcctl does. In a Markdown file:
//
//   - a fenced block whose info string has file=NAME (```yaml file=vote.yaml)
//     is written to NAME in the example's directory;
//   - a fenced block with the info string "console run" holds commands
//     ("$ bcctl ...", continued with a trailing backslash) each followed by
//     its output: stdout, then stderr, then "[exit N]" when N is not 0.
//     In an output line, "..." matches any text; a line that is only "..."
//     matches any number of lines.
//
// Every file's examples run in one directory, in order, against a test
// server (testserver_test.go) that "localhost:9000" stands for. Blocks
// that are only "console" are shown, not run.

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
var docFiles = []string{"../../README.md", "../../docs/cli.md", "../../docs/exit-codes.md"}

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

// docCommand is one "$ bcctl ..." of a console block and what it prints.
type docCommand struct {
	line     int
	args     []string
	want     []string
	wantCode int
}

func parseConsole(b docBlock) ([]docCommand, error) {
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
		if len(args) == 0 || args[0] != "bcctl" {
			return nil, fmt.Errorf("line %d: only bcctl commands are run, not %q", b.line+1+start, text)
		}
		cmds = append(cmds, docCommand{line: b.line + 1 + start, args: args[1:]})
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
	if len(got) == 0 {
		return false
	}
	parts := strings.Split(want[0], "...")
	for i := range parts {
		parts[i] = regexp.QuoteMeta(parts[i])
	}
	if !regexp.MustCompile("^" + strings.Join(parts, ".*") + "$").MatchString(got[0]) {
		return false
	}
	return matchOutput(want[1:], got[1:])
}

func TestDocExamples(t *testing.T) {
	for _, file := range docFiles {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			srv := newServer(t, testServerOptions{})
			t.Chdir(t.TempDir())
			ran := 0
			for _, b := range fencedBlocks(string(data)) {
				fields := strings.Fields(b.info)
				for _, f := range fields {
					if name, ok := strings.CutPrefix(f, "file="); ok {
						if err := os.WriteFile(name, []byte(b.body), 0o644); err != nil {
							t.Fatal(err)
						}
					}
				}
				if b.info != "console run" {
					continue
				}
				cmds, err := parseConsole(b)
				if err != nil {
					t.Fatalf("%s: %v", file, err)
				}
				for _, c := range cmds {
					args := make([]string, len(c.args))
					for i, a := range c.args {
						args[i] = strings.ReplaceAll(a, "localhost:9000", srv.Addr)
					}
					code, out, errOut := runBcctl(t, "", args...)
					got := strings.Split(strings.TrimSuffix(out+errOut, "\n"), "\n")
					if out+errOut == "" {
						got = nil
					}
					got = replaceAll(got, srv.Addr, "localhost:9000")
					if code != c.wantCode || !matchOutput(c.want, got) {
						t.Errorf("%s:%d: bcctl %s\nexit %d (want %d)\ngot:\n%s\nwant:\n%s", file, c.line,
							strings.Join(c.args, " "), code, c.wantCode, strings.Join(got, "\n"), strings.Join(c.want, "\n"))
					}
					ran++
				}
			}
			if ran == 0 && filepath.Base(file) != "README.md" {
				t.Errorf("%s has no examples to run", file)
			}
		})
	}
}

func replaceAll(lines []string, old, new string) []string {
	for i := range lines {
		lines[i] = strings.ReplaceAll(lines[i], old, new)
	}
	return lines
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
