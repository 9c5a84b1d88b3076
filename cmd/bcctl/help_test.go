package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

// TestEveryCommandHasHelpAndExamples walks the whole command tree.
func TestEveryCommandHasHelpAndExamples(t *testing.T) {
	streams, _, _, _ := TestIO()
	root := newRootCmd(TestFactory(streams))
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" {
			return
		}
		if c.Short == "" {
			t.Errorf("%s has no Short help", c.CommandPath())
		}
		if c.Runnable() && strings.TrimSpace(c.Example) == "" {
			t.Errorf("%s has no Example", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	for _, name := range []string{"call", "list", "describe", "connect", "serve", "peers", "demo", "version", "completion"} {
		if c, _, err := root.Find([]string{name}); err != nil || c.Name() != name {
			t.Errorf("no %s command", name)
		}
	}
}

func TestHelpShowsExamples(t *testing.T) {
	code, out, _ := runBcctl(t, "", "call", "--help")
	if code != 0 || !strings.Contains(out, "Examples:") || !strings.Contains(out, "--answer vote.yaml") {
		t.Errorf("call --help: exit %d\n%s", code, out)
	}
}

// TestInterruptedCallExits130 stops bcctl while it waits for reverse calls,
// as SIGINT does.
func TestInterruptedCallExits130(t *testing.T) {
	srv := newServer(t, testServerOptions{})
	ctx, cancel := context.WithCancelCause(testCtx(t))
	defer cancel(nil)
	out := newSyncBuffer()
	errOut := newSyncBuffer()
	streams := &IOStreams{In: strings.NewReader(""), Out: out, ErrOut: errOut}
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"call", "--plaintext", srv.Addr, "acme.Users/Get", "-d", `{"id": "1"}`, "--wait-reverse", "1", "-v"}, TestFactory(streams))
	}()
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := out.waitFor(wctx, "Response trailers received"); err != nil {
		t.Fatalf("the call did not finish: %v\n%s", err, out)
	}
	cancel(errInterrupted)
	if code := <-done; code != ExitInterrupted {
		t.Errorf("exit %d, want %d (stderr %q)", code, ExitInterrupted, errOut)
	}
}
