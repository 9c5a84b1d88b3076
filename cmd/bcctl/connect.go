package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/bcctl/bcctl/internal/client"
	"github.com/bcctl/bcctl/internal/journal"
	"github.com/bcctl/bcctl/internal/words"
)

// ConnectOptions are the options of `bcctl connect`.
type ConnectOptions struct {
	IO      *IOStreams
	Factory *Factory

	Client ClientFlags
	Answer AnswerFlags

	// Address is the argument.
	Address string
	// Output is "auto" (people on a terminal, JSON lines otherwise), "text"
	// or "json".
	Output string
	// Bytes is --bytes: how the calls printed, the journal and the TUI
	// show bytes fields.
	Bytes BytesFlag
	// Verbosity 1 also prints the expectations' report when it passes; 2
	// adds metadata, headers and trailers to each call.
	Verbosity int
	// EmitDefaults shows the fields of the messages printed at their
	// default value too.
	EmitDefaults bool
	// TUI answers reverse calls interactively (--tui) with Interactive;
	// without --answer it is the default on a terminal.
	TUI bool
	// Interactive answers reverse calls under --tui
	// (Factory.Interactive); nil refuses --tui.
	Interactive AnswerUI
	// Responder, when set, builds the Responder of reverse calls instead of
	// the script engine.
	Responder client.ResponderFactory
}

func newConnectCmd(f *Factory, runF func(context.Context, *ConnectOptions) error) *cobra.Command {
	opts := &ConnectOptions{IO: f.IOStreams, Factory: f, Interactive: f.Interactive}
	cmd := &cobra.Command{
		Use:   "connect ADDR [flags]",
		Short: "Stay connected and answer the server's reverse calls",
		Long: `Connect to the server at ADDR with the backchannel handshake and answer the
reverse calls it makes, with the backchannel rules of the --answer script,
until interrupted (Ctrl-C, SIGTERM), --max-time passes, or --wait-reverse calls
have been answered. Each call is printed as it ends: for people on a terminal,
as JSON lines (the journal format of docs/cli.md) when stdout is not one.

The exit code is the script's expectations' result: 0 when they are met (or
there are none), 3 when not; 1 when the connection could not be made or was
lost.`,
		Example: `  # Answer votes from a script until Ctrl-C
  bcctl connect --plaintext localhost:9000 --answer vote.yaml

  # In CI: answer one vote, then exit with the expectations' result
  bcctl connect --plaintext localhost:9000 --answer vote.yaml --wait-reverse 1 --max-time 30

  # Record every reverse call as JSON lines
  bcctl connect --plaintext localhost:9000 --answer vote.yaml --journal calls.jsonl > /dev/null`,
		Args: exactArgs("the server address (ADDR)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Address = args[0]
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return connectRun(cmd.Context(), opts)
		},
	}
	fs := cmd.Flags()
	fs.SortFlags = false
	opts.Answer.AddFlags(fs)
	fs.StringVarP(&opts.Output, "output", "o", "auto", "output `mode` of the calls printed: auto (text on a terminal, json otherwise), text, or json (JSON lines)")
	opts.Bytes.AddFlag(fs)
	fs.CountVarP(&opts.Verbosity, "verbose", "v", "print the expectations' report when it passes too (-vv: also metadata, headers and trailers)")
	fs.BoolVar(&opts.EmitDefaults, "emit-defaults", false, "show the fields of the messages printed at their default value too")
	opts.Client.AddFlags(fs)
	fs.Lookup("max-time").Usage = "stop after this long (`seconds` or a duration), a normal end: the exit code is the expectations'"
	fs.BoolVar(&opts.TUI, "tui", false, "answer reverse calls interactively (the default on a terminal without --answer)")
	return cmd
}

// connectRun runs `bcctl connect`.
func connectRun(ctx context.Context, opts *ConnectOptions) error {
	opts.Factory.verboseLog(opts.Verbosity)
	switch opts.Output {
	case "auto", "text", "json":
	default:
		return usageErrorf("--output %q: want auto, text or json", opts.Output)
	}
	bytes, err := opts.Bytes.Mode()
	if err != nil {
		return err
	}
	if opts.Client.Conn.NoMux {
		return usageErrorf("connect answers reverse calls, which need the backchannel: --no-mux does not go with it")
	}
	plan, err := opts.Client.plan(opts.Address, opts.Factory.Getenv)
	if err != nil {
		return err
	}
	if err := opts.Answer.Validate(); err != nil {
		return err
	}
	if opts.TUI && opts.Interactive == nil {
		return errNoTUI
	}
	streams := opts.IO
	responder := opts.Responder
	useTUI := opts.Interactive != nil && (opts.TUI ||
		(opts.Answer.Answer == "" && opts.Output == "auto" && streams.IsStdinTTY() && streams.IsStdoutTTY()))
	if useTUI {
		responder = opts.Interactive.on(streams)
	}

	// For connect, --max-time is when to stop, not a deadline: it passing
	// before the connection is made is a connection that could not be.
	var cancel context.CancelFunc
	if d := opts.Client.Conn.MaxTime; d > 0 {
		ctx, cancel = context.WithTimeoutCause(ctx, d, fmt.Errorf("--max-time %s passed", d))
	} else {
		ctx, cancel = context.WithCancel(ctx)
	}
	defer cancel()
	printer := &entryPrinter{
		w:            streams.SyncOut(),
		jsonLines:    opts.Output == "json" || (opts.Output == "auto" && !streams.IsStdoutTTY()),
		verbosity:    max(opts.Verbosity, 1),
		clock:        true,
		cs:           streams.ColorScheme(),
		emitDefaults: opts.EmitDefaults,
	}
	var tap func(journal.Entry)
	if !useTUI {
		tap = printer.print
	}
	cfg := opts.Client.sessionConfig(plan, opts.Factory)
	cfg.Backchannel = opts.Answer.backchannel(responder, cancel, plan.rpcMD)
	cfg.Journal, cfg.Tap, cfg.LazyForward, cfg.Bytes = opts.Answer.Journal, tap, true, bytes
	s, err := client.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	if streams.IsStderrTTY() && !useTUI {
		with := "no --answer script: every reverse call gets UNIMPLEMENTED"
		if opts.Answer.Answer != "" {
			with = "answering with " + opts.Answer.Answer
		}
		fmt.Fprintf(streams.SyncErrOut(), "Connected to %s (%s). Ctrl-C to stop.\n", plan.addr, with)
	}

	end := s.WaitReverse(ctx, opts.Answer.WaitReverse)
	lost, waited := end == client.WaitLost, end == client.WaitReached
	if lost && useTUI {
		// The TUI keeps the queue on the screen, each call saying how the
		// lost connection ended it, until the person leaves.
		<-ctx.Done()
	}
	report := s.Check()
	closeErr := s.Close()
	if report != nil && report.OK() && opts.Verbosity > 0 {
		fmt.Fprintf(streams.SyncErrOut(), "%s\n", report)
	}
	var errs []error
	if lost {
		errs = append(errs, fmt.Errorf("the server at %s closed the connection", plan.addr))
	}
	if opts.Answer.WaitReverse > 0 && !waited && !lost {
		got := s.Conn().ReverseCalls()
		why := "before bcctl was stopped"
		if !interrupted(ctx) {
			why = fmt.Sprintf("before --max-time %s passed", opts.Client.Conn.MaxTime)
		}
		errs = append(errs, fmt.Errorf("--wait-reverse %d: %d reverse %s answered %s", opts.Answer.WaitReverse, got, words.Plural(got, "call was", "calls were"), why))
	}
	if closeErr != nil {
		errs = append(errs, closeErr)
	}
	if len(errs) > 0 {
		if report != nil && !report.OK() {
			fmt.Fprintf(streams.SyncErrOut(), "%s\n", report)
		}
		return errors.Join(errs...)
	}
	if report != nil && !report.OK() {
		return report.Err()
	}
	return nil
}
