package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// newRootCmd returns the bcctl command with every subcommand.
func newRootCmd(f *Factory) *cobra.Command {
	root := &cobra.Command{
		Use:   "bcctl <command> [flags]",
		Short: "grpcurl for gRPC connections that talk back",
		Long: `bcctl calls gRPC servers from the command line, like grpcurl, and speaks the
backchannel protocol of GitLab's Gitaly: one connection carries the client's
calls to the server and the server's reverse calls to the client. bcctl
answers those reverse calls (from a script, or by hand), and can mock a
backchannel server that calls back into its peers.`,
		Example: `  # Call a method, resolving the schema by server reflection
  bcctl call --plaintext localhost:9000 acme.Users/Get -d '{"id": "42"}'

  # Call Gitaly as Praefect does (transaction 7 of node gitaly-1, branch feature/x)
  # and answer its votes from a script
  bcctl call --plaintext localhost:9000 gitaly.OperationService/UserCreateBranch \
      -H 'gitaly-reference-transaction: eyJpZCI6Nywibm9kZSI6ImdpdGFseS0xIiwicHJpbWFyeSI6dHJ1ZX0=' \
      -d '{"branch_name": "ZmVhdHVyZS94"}' --answer vote.yaml

  # List and describe services
  bcctl list --plaintext localhost:9000
  bcctl describe --plaintext localhost:9000 gitaly.RefTransaction`,
		Version:       versionString(),
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetIn(f.IOStreams.In)
	root.SetOut(f.IOStreams.Out)
	root.SetErr(f.IOStreams.ErrOut)
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetFlagErrorFunc(flagError)
	root.CompletionOptions.DisableDefaultCmd = true

	root.AddCommand(
		newCallCmd(f, nil),
		newListCmd(f, nil),
		newDescribeCmd(f, nil),
		newConnectCmd(f, nil),
		newServeCmd(f, nil),
		newProxyCmd(f, nil),
		newPeersCmd(f),
		newDemoCmd(f, nil),
		newVersionCmd(f, nil),
		newCompletionCmd(f),
	)
	for _, c := range root.Commands() {
		switch c.Name() {
		case "call", "list", "describe", "connect":
			completeFlagValues(c)
		}
	}
	return root
}

// Main runs bcctl as a process and returns its exit code.
func Main() int {
	ctx, stop := signalContext(context.Background())
	defer stop()
	return Run(ctx, os.Args[1:], NewFactory(SystemIO()))
}

// Run runs bcctl with args and returns the exit code, after printing any
// error to f's stderr. It is the process without the process: tests call it.
func Run(ctx context.Context, args []string, f *Factory) int {
	root := newRootCmd(f)
	root.SetArgs(grpcurlFlags(root, args))
	cmd, err := execute(ctx, root)
	path := ""
	if cmd != nil {
		path = cmd.CommandPath()
	}
	reportError(f.IOStreams.ErrOut, err, path)
	return exitCodeOf(err)
}

// execute runs root. An error that cobra returns before a command's run
// function started (an unknown command or flag, a wrong number of
// arguments) is a usage error.
func execute(ctx context.Context, root *cobra.Command) (*cobra.Command, error) {
	started := false
	markStarted(root, &started)
	cmd, err := root.ExecuteContextC(ctx)
	if err != nil && !started {
		var usage *usageError
		if !errors.As(err, &usage) {
			err = &usageError{err: err}
		}
	}
	return cmd, err
}

// markStarted wraps the run functions of cmd and its subcommands so that
// *started tells whether one of them was entered.
func markStarted(cmd *cobra.Command, started *bool) {
	if run := cmd.RunE; run != nil {
		cmd.RunE = func(c *cobra.Command, args []string) error {
			*started = true
			return run(c, args)
		}
	}
	if run := cmd.Run; run != nil {
		cmd.Run = func(c *cobra.Command, args []string) {
			*started = true
			run(c, args)
		}
	}
	for _, sub := range cmd.Commands() {
		markStarted(sub, started)
	}
}

// signalContext returns a context cancelled with errInterrupted by the
// first SIGINT or SIGTERM; a second signal ends the process at once.
func signalContext(parent context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(parent)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case <-sigs:
			cancel(errInterrupted)
		case <-done:
			return
		}
		select {
		case <-sigs:
			os.Exit(ExitInterrupted)
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		cancel(nil)
	}
}

// exactArgs is cobra.ExactArgs with the names of the arguments in the
// error.
func exactArgs(names ...string) cobra.PositionalArgs {
	return rangeArgs(len(names), len(names), names...)
}

// rangeArgs accepts between min and max arguments, naming them in errors.
func rangeArgs(min, max int, names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) < min:
			return usageErrorf("%s: missing %s", commandName(cmd), joinNames(names[len(args):min]))
		case len(args) > max:
			return usageErrorf("%s: too many arguments: want at most %d (%s), got %d: %q", commandName(cmd), max, joinNames(names), len(args), args[max:])
		}
		return nil
	}
}

// commandName is cmd's path without "bcctl": "call", "peers call".
func commandName(cmd *cobra.Command) string {
	return strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
}

func joinNames(names []string) string {
	s := ""
	for i, n := range names {
		if i > 0 {
			s += " and "
		}
		s += n
	}
	return s
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
