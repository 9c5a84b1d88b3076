package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/client"
	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/journal"
)

// testCtx returns a context that ends with the test, or after 30s.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newServer(t *testing.T, opts testServerOptions) *testServer {
	t.Helper()
	srv, err := startTestServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	return srv
}

// runBcctl runs bcctl in this process with args and stdin, and returns its
// exit code and output.
func runBcctl(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	streams, in, out, errOut := TestIO()
	in.WriteString(stdin)
	code = Run(testCtx(t), args, TestFactory(streams))
	return code, out.String(), errOut.String()
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := t.TempDir() + "/" + name
	if err := osWriteFile(path, content); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCallRun(t *testing.T) {
	srv := newServer(t, testServerOptions{})
	commit := writeFile(t, "commit.yaml", `
backchannel:
  - name: commit
    match: {method: gitaly.RefTransaction/VoteTransaction}
    reply: {state: COMMIT}
expect:
  - {method: gitaly.RefTransaction/VoteTransaction, dir: reverse, count: 2}
`)
	for _, tc := range []struct {
		name     string
		stdin    string
		args     []string
		wantCode int
		wantOut  []string
		wantErr  []string
	}{
		{
			name:    "unary",
			args:    []string{"call", "--plaintext", srv.Addr, "acme.Users/Get", "-d", `{"id": "1"}`},
			wantOut: []string{`"name": "user 1"`},
		},
		{
			name:     "not found",
			args:     []string{"call", "--plaintext", srv.Addr, "acme.Users/Get", "-d", `{"id": "404"}`},
			wantCode: 64 + int(codes.NotFound),
			wantErr:  []string{"Code: NotFound", "USER_NOT_FOUND"},
		},
		{
			name:    "vote by script",
			args:    []string{"call", "--plaintext", srv.Addr, "gitaly.OperationService/UserCreateBranch", "-d", `{"branch_name": "Yg=="}`, "--answer", commit},
			wantOut: []string{`"name": "Yg=="`}, // protobuf JSON: bytes in base64
		},
		{
			name:     "expectations fail",
			args:     []string{"call", "--plaintext", srv.Addr, "acme.Users/Get", "-d", `{"id": "1"}`, "--answer", commit},
			wantCode: ExitExpectations,
			wantErr:  []string{"want exactly 2 reverse calls to gitaly.RefTransaction/VoteTransaction, got 0"},
		},
		{
			name:    "client stream from stdin",
			stdin:   `{"id": "a"} {"id": "b"}`,
			args:    []string{"call", "--plaintext", srv.Addr, "acme.Users/Import", "-d", "@-"},
			wantOut: []string{`"imported": 2`},
		},
		{
			name:     "script that does not load",
			args:     []string{"call", "--plaintext", srv.Addr, "acme.Users/Get", "--answer", writeFile(t, "bad.yaml", "backchannel:\n  - match: {method: gitaly.RefTransaction/VoteTransactio}\n    reply: {}\n")},
			wantCode: ExitError,
			wantErr:  []string{"bcctl: --answer: script: ", `bad.yaml:2:21: backchannel[0].match.method: unknown method "gitaly.RefTransaction/VoteTransactio"`},
		},
		{
			name:     "bad output mode",
			args:     []string{"call", "--plaintext", srv.Addr, "acme.Users/Get", "-o", "yaml"},
			wantCode: ExitUsage,
			wantErr:  []string{`--output "yaml": want text or json`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runBcctl(t, tc.stdin, tc.args...)
			if code != tc.wantCode {
				t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.wantCode, out, errOut)
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(out, w) {
					t.Errorf("stdout does not contain %q:\n%s", w, out)
				}
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr does not contain %q:\n%s", w, errOut)
				}
			}
		})
	}
}

// TestCallOutputJSON checks the document of -o json as a whole.
func TestCallOutputJSON(t *testing.T) {
	srv := newServer(t, testServerOptions{})
	answer := writeFile(t, "vote.yaml", `
backchannel:
  - {name: commit, match: {method: gitaly.RefTransaction/VoteTransaction}, reply: {state: COMMIT}}
expect:
  - {method: gitaly.RefTransaction/VoteTransaction, dir: reverse, count: 2}
`)
	code, out, errOut := runBcctl(t, "", "call", "--plaintext", srv.Addr, "gitaly.OperationService/UserCreateBranch",
		"-H", "gitaly-reference-transaction: eyJpZCI6MTIsIm5vZGUiOiJnaXRhbHktMSIsInByaW1hcnkiOnRydWV9", "-d", `{"branch_name": "ZmVhdHVyZS9kb2M="}`, "--answer", answer, "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var doc struct {
		journal.Entry
		Calls        []journal.Entry `json:"calls"`
		Expectations struct {
			OK      bool `json:"ok"`
			Results []struct {
				Count int `json:"count"`
			} `json:"results"`
		} `json:"expectations"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("not one JSON document: %v\n%s", err, out)
	}
	if doc.Method != "gitaly.OperationService/UserCreateBranch" || doc.Status.Code != "OK" || doc.By != journal.ByCLI {
		t.Errorf("forward call = %+v", doc.Entry)
	}
	if got := compactJSON(t, doc.Responses[0]); got != `{"branch":{"name":"ZmVhdHVyZS9kb2M=","target_commit":{"id":"HEAD"}}}` {
		t.Errorf("response = %s", got)
	}
	if len(doc.Calls) != 2 {
		t.Fatalf("calls = %+v, want the two votes", doc.Calls)
	}
	for i, phase := range []string{"PREPARED_PHASE", "COMMITTED_PHASE"} {
		vote := doc.Calls[i]
		if vote.Dir != journal.DirReverse || vote.Origin != journal.OriginAnswered || vote.Rule == nil || vote.Rule.Name != "commit" {
			t.Errorf("vote %d = %+v", i, vote)
		}
		if got := compactJSON(t, vote.Requests[0]); !strings.Contains(got, `"transaction_id":"12"`) || !strings.Contains(got, `"phase":"`+phase+`"`) {
			t.Errorf("vote %d request = %s, want transaction 12 in %s", i, got, phase)
		}
		if doc.ID <= vote.ID {
			t.Errorf("the forward call (id %d) ended after vote %d (id %d): want the larger id", doc.ID, i, vote.ID)
		}
	}
	if !doc.Expectations.OK || doc.Expectations.Results[0].Count != 2 {
		t.Errorf("expectations = %+v", doc.Expectations)
	}
}

// syncBuffer is a Buffer safe for a writer and a reader at once, which
// tells when new data arrives.
type syncBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{changed: make(chan struct{})} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	close(b.changed)
	b.changed = make(chan struct{})
	return n, err
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// snapshot returns what the buffer holds, and a channel closed when more
// arrives.
func (b *syncBuffer) snapshot() (string, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String(), b.changed
}

// waitFor waits until the buffer contains s.
func (b *syncBuffer) waitFor(ctx context.Context, s string) error {
	for {
		b.mu.Lock()
		has, ch := strings.Contains(b.buf.String(), s), b.changed
		b.mu.Unlock()
		if has {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// TestCallBidiIsFullDuplex sends a bidi request, waits for its answer to be
// printed, and only then sends the next: the call is live, not read to the
// end of stdin first.
func TestCallBidiIsFullDuplex(t *testing.T) {
	srv := newServer(t, testServerOptions{})
	ctx := testCtx(t)
	inR, inW := io.Pipe()
	out := newSyncBuffer()
	streams := &IOStreams{In: inR, Out: out, ErrOut: io.Discard}
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"call", "--plaintext", srv.Addr, "acme.Users/Chat", "-d", "@-"}, TestFactory(streams))
	}()
	for _, text := range []string{"one", "two", "three"} {
		if _, err := io.WriteString(inW, `{"text": "`+text+`"}`+"\n"); err != nil {
			t.Fatal(err)
		}
		if err := out.waitFor(ctx, "echo: "+text); err != nil {
			t.Fatalf("no answer to %q before the next request: %v\nstdout:\n%s", text, err, out)
		}
	}
	inW.Close()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// TestConnectRunWithResponder plugs a Responder in, as the TUI does: it
// answers the vote by hand, reports the call, and leaves the rest to the
// script engine.
func TestConnectRunWithResponder(t *testing.T) {
	srv := newServer(t, testServerOptions{})
	ctx, cancel := context.WithCancel(testCtx(t))
	answer := writeFile(t, "stop.yaml", `
backchannel:
  - {name: stop, match: {method: gitaly.RefTransaction/StopTransaction}, reply: {}}
expect:
  - {method: gitaly.RefTransaction/VoteTransaction, dir: reverse, count: 1}
`)
	streams, _, out, errOut := TestIO()
	f := TestFactory(streams)
	var gotEnv client.ResponderEnv
	opts := &ConnectOptions{IO: streams, Factory: f}
	cmd := newConnectCmd(f, func(_ context.Context, o *ConnectOptions) error { opts = o; return nil })
	cmd.SetArgs([]string{"--plaintext", srv.Addr, "--answer", answer, "--output", "json"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	opts.Responder = func(env client.ResponderEnv) (dynamic.Responder, error) {
		gotEnv = env
		return dynamic.ResponderFunc(func(call dynamic.Call) error {
			if dynamic.MethodName(call.Method()) != "gitaly.RefTransaction/VoteTransaction" {
				return env.Engine.Respond(call)
			}
			start := time.Now()
			req, err := call.Recv()
			if err != nil {
				return err
			}
			reply := srv.message("gitaly.VoteTransactionResponse", `{"state": "STOP"}`)
			if err := call.Send(reply); err != nil {
				return err
			}
			env.Report(&calls.Event{
				Dir: calls.Reverse, Origin: calls.Answered, Peer: call.Peer(), Method: "gitaly.RefTransaction/VoteTransaction",
				Metadata: call.Metadata(), Requests: []proto.Message{req}, Responses: []proto.Message{reply},
				Status: status.New(codes.OK, ""), Start: start, Duration: time.Since(start),
			}, journal.ByTUI)
			return nil
		}), nil
	}
	done := make(chan error, 1)
	go func() { done <- connectRun(ctx, opts) }()
	got, err := srv.callPeers(ctx, "gitaly.RefTransaction/VoteTransaction", `{"transaction_id": 1}`, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !strings.HasSuffix(got[0], `OK {"state":"STOP"}`) {
		t.Errorf("vote answered %q, want STOP", got)
	}
	if got, _ := srv.callPeers(ctx, "gitaly.RefTransaction/StopTransaction", `{}`, 10*time.Second); len(got) != 1 || !strings.HasSuffix(got[0], "OK {}") {
		t.Errorf("stop answered %q, want the script's OK", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("connect: %v (stderr %s)", err, errOut)
	}
	if gotEnv.Engine == nil || gotEnv.Conn == nil || gotEnv.Hosted == nil || gotEnv.Report == nil {
		t.Errorf("ResponderEnv is missing parts: %+v", gotEnv)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"by":"tui"`) || !strings.Contains(lines[0], `"responses":[{"state":"STOP"}]`) ||
		!strings.Contains(lines[1], `"rule":{"name":"stop"`) {
		t.Errorf("connect printed:\n%s", out)
	}
}

func TestListAndDescribeRun(t *testing.T) {
	srv := newServer(t, testServerOptions{})
	code, out, errOut := runBcctl(t, "", "list", "--plaintext", srv.Addr, "acme.Users")
	if code != 0 || out != "acme.Users/Get\nacme.Users/Create\nacme.Users/Update\nacme.Users/Delete\nacme.Users/List\nacme.Users/Import\nacme.Users/Chat\n" {
		t.Errorf("list: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runBcctl(t, "", "describe", "--plaintext", "--no-mux", srv.Addr, ".gitaly.VoteTransactionResponse.TransactionState")
	if code != 0 || !strings.HasPrefix(out, "gitaly.VoteTransactionResponse.TransactionState is an enum:\n") {
		t.Errorf("describe: exit %d\n%s%s", code, out, errOut)
	}
}

func osWriteFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o644) }

func compactJSON(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatal(err)
	}
	return b.String()
}
