package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// corpusProtoset is the schema of the services the TUI answers.
const corpusProtoset = "../../internal/corpus/corpus.protoset"

// screen is a terminal that the TUI draws on: safe to read while the
// program writes, and it tells waiters of every write.
type screen struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed and replaced at every write
}

func newScreen() *screen { return &screen{changed: make(chan struct{})} }

func (s *screen) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.changed)
	s.changed = make(chan struct{})
	return s.buf.Write(p)
}

func (s *screen) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// snapshot returns what the screen shows and a channel closed at the next
// write.
func (s *screen) snapshot() (string, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String(), s.changed
}

// waitFor waits until the screen shows every one of texts.
func (s *screen) waitFor(t *testing.T, texts ...string) {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		out, changed := s.snapshot()
		missing := ""
		for _, want := range texts {
			if !strings.Contains(out, want) {
				missing = want
				break
			}
		}
		if missing == "" {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("the screen never showed %q; it shows:\n%s", missing, out)
		}
	}
}

// tuiRunBcctl runs bcctl with its TUI on a fake terminal: keys are written
// to the returned writer, the screen is read from the returned screen, and
// the exit code and stderr come on the channel when bcctl ends.
func tuiRunBcctl(t *testing.T, args ...string) (keys io.WriteCloser, term *screen, result <-chan struct {
	code   int
	stderr string
}) {
	t.Helper()
	in, keys := io.Pipe()
	term = newScreen()
	var errOut bytes.Buffer
	streams := &IOStreams{In: in, Out: term, ErrOut: &errOut}
	done := make(chan struct {
		code   int
		stderr string
	}, 1)
	go func() {
		code := Run(testCtx(t), args, TestFactory(streams))
		done <- struct {
			code   int
			stderr string
		}{code, errOut.String()}
	}()
	t.Cleanup(func() { keys.Close() })
	return keys, term, done
}

func wait[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(30 * time.Second):
		t.Fatal("bcctl did not end within 30s")
	}
	var zero T
	return zero
}

// TestCallTUI: bcctl call --tui shows the votes the forward call causes
// (PREPARED_PHASE, then COMMITTED_PHASE, as Gitaly votes), the person sends
// the template's COMMIT to each, the call ends, the TUI closes and the
// response is printed after it.
func TestCallTUI(t *testing.T) {
	srv := newServer(t, testServerOptions{})
	keys, term, done := tuiRunBcctl(t, "call", "--plaintext", srv.Addr, "gitaly.OperationService/UserCreateBranch",
		"-d", `{"branch_name": "ZmVhdHVyZS90dWk=", "start_point": "YWJj"}`, "-H", "gitaly-reference-transaction: eyJpZCI6OSwibm9kZSI6ImdpdGFseS0xIiwicHJpbWFyeSI6dHJ1ZX0=", "--tui", "--protoset", corpusProtoset)
	term.waitFor(t, "gitaly.RefTransaction/VoteTransaction", "left", `"transaction_id": "9"`, `"phase": "PREPARED_PHASE"`)
	if _, err := keys.Write([]byte("s")); err != nil {
		t.Fatal(err)
	}
	term.waitFor(t, `"phase": "COMMITTED_PHASE"`)
	if _, err := keys.Write([]byte("s")); err != nil {
		t.Fatal(err)
	}
	res := wait(t, done)
	if res.code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", res.code, res.stderr)
	}
	if log := srv.reverseLog(2, time.Second); len(log) != 2 || log[0] != "vote COMMIT" || log[1] != "vote COMMIT" {
		t.Errorf("the server saw %v, want two COMMIT votes", log)
	}
	out := term.String()
	i := strings.LastIndex(out, `"name": "ZmVhdHVyZS90dWk="`) // feature/tui
	if i < 0 || i < strings.LastIndex(out, "VoteTransaction") {
		t.Errorf("the response should be printed after the TUI closed; the terminal got:\n%s", out)
	}
}

// TestConnectTUI: bcctl connect --tui answers a reverse call with an error
// from the error form, journals it as answered by the TUI, and ends when
// the person quits.
func TestConnectTUI(t *testing.T) {
	srv := newServer(t, testServerOptions{})
	journalPath := t.TempDir() + "/calls.jsonl"
	keys, term, done := tuiRunBcctl(t, "connect", "--plaintext", srv.Addr, "--tui", "--journal", journalPath, "--backchannel-protoset", corpusProtoset)
	answers := make(chan []string, 1)
	go func() {
		out, err := srv.callPeers(testCtx(t), "gitaly.RefTransaction/VoteTransaction", `{"transaction_id": 5}`, 20*time.Second)
		if err != nil {
			out = []string{err.Error()}
		}
		answers <- out
	}()
	term.waitFor(t, "VoteTransaction", "left")
	// e: the error form (ABORTED); tab: the message; ctrl+s: send.
	if _, err := keys.Write([]byte("e\tnot now\x13")); err != nil {
		t.Fatal(err)
	}
	if got := wait(t, answers); len(got) != 1 || !strings.HasSuffix(got[0], "ABORTED: not now") {
		t.Fatalf("the server got %v, want ABORTED: not now", got)
	}
	term.waitFor(t, "ABORTED")
	if _, err := keys.Write([]byte("q")); err != nil {
		t.Fatal(err)
	}
	if res := wait(t, done); res.code != 0 {
		t.Fatalf("exit %d after q, stderr:\n%s", res.code, res.stderr)
	}
	data, err := os.ReadFile(journalPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"by":"tui"`) || !strings.Contains(string(data), `"code":"ABORTED"`) {
		t.Errorf("journal:\n%s\nwant the call answered by the TUI with ABORTED", data)
	}
}

// TestCallTUIRefusesStdinRequests: the keyboard and -d @- cannot share
// stdin.
func TestCallTUIRefusesStdinRequests(t *testing.T) {
	code, _, stderr := runBcctl(t, "", "call", "--plaintext", "127.0.0.1:1", "x.Y/Z", "-d", "@-", "--tui")
	if code != 2 || !strings.Contains(stderr, "-d @-") {
		t.Errorf("exit %d, stderr %q; want a usage error naming -d @-", code, stderr)
	}
}

// TestServeTUI: bcctl serve --tui shows the live registry, and quitting
// the TUI stops serve.
func TestServeTUI(t *testing.T) {
	keys, term, done := tuiRunBcctl(t, "serve", "--listen", "127.0.0.1:0", "--protoset", corpusProtoset, "--tui")
	term.waitFor(t, "bcctl serve", "0 peers", "no peers connected yet", "Journal (0)")
	if _, err := keys.Write([]byte("q")); err != nil {
		t.Fatal(err)
	}
	res := wait(t, done)
	if res.code != 0 || !strings.Contains(res.stderr, "the terminal UI was closed") {
		t.Errorf("exit %d, stderr:\n%s", res.code, res.stderr)
	}
}

// TestProxyTUI: bcctl proxy --tui shows the proxy's clients and the calls
// both ways as serve's TUI shows a serve's, and quitting it stops the
// proxy.
func TestProxyTUI(t *testing.T) {
	srv := newServer(t, testServerOptions{})
	addrFile := filepath.Join(t.TempDir(), "addr")
	keys, term, done := tuiRunBcctl(t, "proxy", "--listen", "127.0.0.1:0", "--upstream", srv.Addr, "--plaintext",
		"--protoset", corpusProtoset, "--tui", "--addr-file", addrFile)
	term.waitFor(t, "bcctl proxy", "→ "+srv.Addr, "0 peers", "Journal (0)")
	data, err := os.ReadFile(addrFile)
	if err != nil {
		t.Fatal(err)
	}
	proxyAddr := strings.TrimPrefix(strings.TrimSpace(string(data)), "listen ")
	if code, stdout, stderr := runBcctl(t, "", "call", "--plaintext", proxyAddr, "acme.Users/Get", "-d", `{"id": "42"}`, "--protoset", corpusProtoset); code != 0 {
		t.Fatalf("a call through the proxy: exit %d\n%s%s", code, stdout, stderr)
	}
	term.waitFor(t, "Journal (1)", "acme.Users/Get")
	if _, err := keys.Write([]byte("q")); err != nil {
		t.Fatal(err)
	}
	res := wait(t, done)
	if res.code != 0 || !strings.Contains(res.stderr, "stopped (the terminal UI was closed)") {
		t.Errorf("exit %d, stderr:\n%s", res.code, res.stderr)
	}
}

// TestTUIRefusedWithoutUI: a Factory without terminal UIs still has --tui
// on call, connect and serve, and refuses it as a usage error.
func TestTUIRefusedWithoutUI(t *testing.T) {
	for _, args := range [][]string{
		{"call", "--plaintext", "127.0.0.1:1", "x.Y/Z", "--tui"},
		{"connect", "--plaintext", "127.0.0.1:1", "--tui"},
		{"serve", "--listen", "127.0.0.1:0", "--protoset", corpusProtoset, "--tui"},
		{"proxy", "--upstream", "127.0.0.1:1", "--plaintext", "--tui"},
	} {
		t.Run(args[0], func(t *testing.T) {
			streams, _, _, errOut := TestIO()
			f := TestFactory(streams)
			f.Interactive, f.ServeUI = nil, nil
			if code := Run(testCtx(t), args, f); code != ExitUsage || !strings.Contains(errOut.String(), "--tui: this bcctl has no terminal UI") {
				t.Errorf("exit %d, stderr %q; want %d and a usage error naming --tui", code, errOut, ExitUsage)
			}
		})
	}
}

// TestConnectTUIServerGone (issue 15, item 14): when the server goes away
// the TUI stays, says why, and keeps the queue until the person leaves;
// then connect exits with the lost connection.
func TestConnectTUIServerGone(t *testing.T) {
	srv := newServer(t, testServerOptions{})
	keys, term, done := tuiRunBcctl(t, "connect", "--plaintext", srv.Addr, "--tui", "--backchannel-protoset", corpusProtoset)
	go func() {
		_, _ = srv.callPeers(testCtx(t), "gitaly.RefTransaction/VoteTransaction", `{"transaction_id": 5}`, 20*time.Second)
	}()
	term.waitFor(t, "VoteTransaction", "left")
	srv.Stop()
	term.waitFor(t, "the server at "+srv.Addr+" closed the connection · q leaves")
	select {
	case res := <-done:
		t.Fatalf("connect ended (exit %d) before the person left; stderr:\n%s", res.code, res.stderr)
	default:
	}
	if _, err := keys.Write([]byte("q")); err != nil {
		t.Fatal(err)
	}
	res := wait(t, done)
	if res.code != ExitError || !strings.Contains(res.stderr, "closed the connection") {
		t.Errorf("exit %d, stderr:\n%s\nwant %d naming the closed connection", res.code, res.stderr, ExitError)
	}
}
