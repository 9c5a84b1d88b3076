package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"

	"github.com/bcctl/bcctl/internal/client"
	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/host"
	"github.com/bcctl/bcctl/internal/journal"
	"github.com/bcctl/bcctl/internal/words"
)

// CallOptions are the options of `bcctl call`.
type CallOptions struct {
	IO      *IOStreams
	Factory *Factory

	Client      ClientFlags
	Answer      AnswerFlags
	Format      FormatFlags
	Sidechannel SidechannelFlags

	// Address and Method are the arguments.
	Address string
	Method  string
	// Data is -d: inline JSON (or text), @FILE, or @- (or @) for stdin.
	Data string
	// Verbosity is -v (1) or -vv (2).
	Verbosity int
	// Output is "text" (grpcurl's output) or "json" (one document).
	Output string
	// TUI answers reverse calls interactively (--tui) with Interactive.
	TUI bool
	// Interactive answers reverse calls under --tui
	// (Factory.Interactive); nil refuses --tui.
	Interactive AnswerUI
	// Responder, when set, builds the Responder of reverse calls instead of
	// the script engine (tests; --tui uses Interactive instead).
	Responder client.ResponderFactory
}

func newCallCmd(f *Factory, runF func(context.Context, *CallOptions) error) *cobra.Command {
	opts := &CallOptions{IO: f.IOStreams, Factory: f, Interactive: f.Interactive}
	cmd := &cobra.Command{
		Use:   "call ADDR METHOD [flags]",
		Short: "Call a method, and answer the reverse calls the server makes meanwhile",
		Long: `Call METHOD (pkg.Service/Method) on the server at ADDR, with grpcurl's flags.

bcctl connects with the backchannel handshake (use --no-mux for servers that do
not speak it) and, while connected, hosts a gRPC server on the backchannel: the
server's reverse calls are answered by the backchannel rules of the --answer
script, or get UNIMPLEMENTED naming the closest rule and why it missed.
Reflection and health are served there too, so the server can list what bcctl
offers. The schema of the hosted services is the forward schema unless
--backchannel-proto or --backchannel-protoset is given.

Requests come from -d: JSON (or protobuf text with --format text), several
concatenated for streaming calls, @FILE to read a file, @- to read stdin as it
is typed (bidi streams are full duplex). Without -d, a unary or
server-streaming call sends an empty request.

Exit codes: 0 OK; 1 runtime error; 2 usage error; 3 the --answer script's
expectations failed; 64+code when the call ends with a non-OK status (69 for
NOT_FOUND). See docs/exit-codes.md.`,
		Example: `  # A unary call, the schema by reflection
  bcctl call --plaintext localhost:9000 acme.Users/Get -d '{"id": "42"}'

  # Gitaly asks the caller to vote before it creates the branch: answer by script.
  # The metadata is Praefect's transaction (base64 of {"id":7,"node":"gitaly-1","primary":true});
  # -d is protobuf JSON, so branch_name (bytes) is base64: ZmVhdHVyZS94 is feature/x
  bcctl call --plaintext localhost:9000 gitaly.OperationService/UserCreateBranch \
      -H 'gitaly-reference-transaction: eyJpZCI6Nywibm9kZSI6ImdpdGFseS0xIiwicHJpbWFyeSI6dHJ1ZX0=' \
      -d '{"branch_name": "ZmVhdHVyZS94"}' --answer vote.yaml -v

  # Requests from a file, schema from a protoset, TLS with a private CA
  bcctl call --cacert ca.pem --protoset api.protoset gitaly.internal:9999 acme.Users/Import -d @users.json

  # A live bidi stream from stdin, plain gRPC server
  bcctl call --plaintext --no-mux localhost:9000 acme.Users/Chat -d @-

  # One JSON document with everything that happened, for scripts
  bcctl call --plaintext localhost:9000 gitaly.OperationService/UserDeleteBranch --answer vote.yaml \
      --wait-reverse 1 -o json | jq .calls`,
		Args: exactArgs("the server address (ADDR)", "the method (METHOD)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Address, opts.Method = args[0], args[1]
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return callRun(cmd.Context(), opts)
		},
	}
	fs := cmd.Flags()
	fs.SortFlags = false
	fs.StringVarP(&opts.Data, "data", "d", "", "request `data`: JSON (or text), @FILE, or @- for stdin")
	opts.Format.AddFlags(fs)
	fs.CountVarP(&opts.Verbosity, "verbose", "v", "show headers, trailers and every reverse call (-vv: also metadata, timing and sizes)")
	fs.StringVarP(&opts.Output, "output", "o", "text", "output `mode`: text (grpcurl's output) or json (one JSON document with the call, its status and every reverse call)")
	opts.Client.AddFlags(fs)
	fs.Lookup("max-time").Usage = "the most the whole command may take (`seconds` or a duration), and the call's deadline; its passing exits 68, DEADLINE_EXCEEDED"
	opts.Answer.AddFlags(fs)
	opts.Answer.AddLingerFlag(fs)
	opts.Sidechannel.AddFlags(fs)
	fs.BoolVar(&opts.TUI, "tui", false, "answer reverse calls interactively in a terminal UI")
	return cmd
}

// callRun runs `bcctl call`.
func callRun(ctx context.Context, opts *CallOptions) (retErr error) {
	opts.Factory.verboseLog(opts.Verbosity)
	if opts.Output != "text" && opts.Output != "json" {
		return usageErrorf("--output %q: want text or json", opts.Output)
	}
	plan, err := opts.Client.plan(opts.Address, opts.Factory.Getenv)
	if err != nil {
		return err
	}
	if err := opts.Answer.Validate(); err != nil {
		return err
	}
	if _, err := opts.Format.Parsed(); err != nil {
		return err
	}
	if opts.TUI && opts.Interactive == nil {
		return errNoTUI
	}
	if opts.TUI && opts.Output == "json" {
		return usageErrorf("--tui and --output json do not go together")
	}
	if opts.TUI && (opts.Data == "@-" || opts.Data == "@") {
		return usageErrorf("--tui reads the keyboard: -d @- cannot read requests from stdin too (use -d @FILE)")
	}
	if opts.Client.Conn.NoMux && (opts.Answer.Answer != "" || opts.Answer.WaitReverse > 0 || opts.TUI) {
		return usageErrorf("--no-mux connects without a backchannel: --answer, --wait-reverse and --tui need one")
	}
	if err := opts.Sidechannel.validate(opts); err != nil {
		return err
	}
	input, closeInput, err := openData(opts.Data, opts.IO.In)
	if err != nil {
		return err
	}
	defer closeInput()

	ctx, cancel := opts.Client.withMaxTime(ctx)
	defer cancel()
	streams := opts.IO
	out, docOut := streams.SyncOut(), streams.Out
	if opts.Sidechannel.Out == "-" {
		// stdout carries the sidechannel's bytes.
		out, docOut = streams.SyncErrOut(), streams.ErrOut
	}
	if opts.TUI {
		// The TUI owns the terminal until the session closes: what the
		// call prints waits until then.
		held := &heldOutput{w: out}
		out = held
		defer held.flush()
	}

	doc := &callDocument{}
	printer := &entryPrinter{w: out, verbosity: opts.Verbosity, cs: streams.ColorScheme(), skipCLI: true, emitDefaults: opts.Format.EmitDefaults}
	tap := func(e journal.Entry) {
		if opts.Format.EmitDefaults && opts.Output == "json" {
			e = e.WithDefaults()
		}
		switch {
		case opts.Output == "json":
			doc.add(e)
		case opts.Verbosity > 0 && !opts.TUI:
			printer.print(e)
		}
	}
	responder := opts.Responder
	if opts.TUI {
		responder = opts.Interactive.on(streams)
	}
	start := time.Now()
	cfg := opts.Client.sessionConfig(plan, opts.Factory)
	cfg.Backchannel = opts.Answer.backchannel(responder, cancel, plan.rpcMD)
	cfg.Journal, cfg.Tap = opts.Answer.Journal, tap
	cfg.Bytes, _ = opts.Format.Bytes.Mode() // checked by Parsed
	s, err := client.Open(ctx, cfg)
	if err != nil {
		return opts.Client.maxTimePassed(ctx, err, "resolving the schema")
	}
	defer s.Close()
	conn := s.Conn()
	if opts.Verbosity > 1 && opts.Output == "text" {
		fmt.Fprintf(out, "Connected to %s%s in %s\n", plan.addr, connDetails(conn, opts.Client.TLS.Plaintext), conn.ConnectTime().Round(time.Microsecond))
	}

	md, err := dynamic.FindMethod(ctx, s.Forward(), opts.Method)
	if err != nil {
		return opts.Client.maxTimePassed(ctx, explainSchemaError(err), "resolving the schema")
	}
	types := dynamic.ChainTypes(s.Forward().Types(), globalTypes())
	parser, err := opts.Format.RequestParser(input, types)
	if err != nil {
		return err
	}
	if opts.Data == "@-" || opts.Data == "@" {
		if streams.IsStdinTTY() && opts.Output == "text" {
			fmt.Fprintf(streams.SyncErrOut(), "Reading requests for %s from stdin (%s; end with Ctrl-D)\n", dynamic.MethodName(md), opts.Format.Format)
		}
	}
	formatter, err := opts.Format.Formatter(types)
	if err != nil {
		return err
	}
	inv := client.Invocation{Method: md, Metadata: plan.rpcMD, Next: parser.Next}
	answer := s.SidechannelAnswer(dynamic.MethodName(md))
	if opts.Sidechannel.wants(dynamic.MethodName(md), answer, opts.Client.Conn.NoMux) {
		side, closeFiles, err := opts.Sidechannel.open(streams, answer)
		if err != nil {
			return err
		}
		inv.Sidechannel = side
		defer func() {
			if err := closeFiles(); err != nil && retErr == nil {
				retErr = err
			}
		}()
	}
	var printing *dynamic.PrintingHandler
	if opts.Output == "text" {
		printing = &dynamic.PrintingHandler{Out: out, Formatter: formatter, Text: opts.Format.Format == "text", Verbosity: opts.Verbosity}
		inv.Handler = printing
	}
	fc, invokeErr := s.Invoke(ctx, inv)
	if fc == nil {
		// Only a request that could not be read or sent ends a call
		// without a status.
		if errors.Is(invokeErr, client.ErrNoStatus) {
			return invokeErr
		}
		return fmt.Errorf("-d: %s", trimPkg(invokeErr))
	}
	st, entry, jerr, callTime := fc.Status, fc.Entry, fc.JournalErr, fc.Duration
	if invokeErr != nil {
		// A bad request in a stream: the call was cancelled because of it.
		return fmt.Errorf("-d: %s", trimPkg(invokeErr))
	}
	if printing != nil && printing.Err != nil {
		return printing.Err
	}
	if opts.Output == "text" {
		reportSidechannel(out, streams.SyncErrOut(), fc.Sidechannel, &opts.Sidechannel, opts.Verbosity)
	}

	if interrupted(ctx) { // during the call itself
		return errInterrupted
	}
	// SIGINT while lingering only ends the linger: the call's result
	// stands. Waiting for --wait-reverse calls that never came is an
	// interruption (waitForReverse says so).
	waitErr := waitForReverse(ctx, s, &opts.Answer, &opts.Client)
	report := s.Check()
	if opts.Verbosity > 1 && opts.Output == "text" {
		fmt.Fprintf(out, "\nTiming: connect %s, call %s, total %s; %s answered\n",
			conn.ConnectTime().Round(time.Microsecond), callTime.Round(time.Microsecond), time.Since(start).Round(time.Microsecond), words.Count(conn.ReverseCalls(), "reverse call"))
	}
	if report != nil && opts.Verbosity > 0 && opts.Output == "text" && report.OK() {
		fmt.Fprintf(out, "\n%s\n", report)
	}
	if err := s.Close(); err != nil && jerr == nil {
		jerr = err
	}
	if held, ok := out.(*heldOutput); ok {
		held.flush()
	}

	if opts.Output == "json" {
		if opts.Format.EmitDefaults {
			entry = entry.WithDefaults()
		}
		doc.setCall(entry)
		doc.setReport(report)
		if err := doc.write(docOut); err != nil {
			return err
		}
	} else if st.Code() != codes.OK {
		if opts.Format.FormatError {
			text, err := opts.Format.FormatStatus(st, types)
			if err != nil {
				return err
			}
			fmt.Fprintln(out, text)
		} else {
			fmt.Fprint(streams.SyncErrOut(), dynamic.FormatStatus(st, types))
		}
	}
	switch {
	case jerr != nil:
		return fmt.Errorf("--journal: %w", jerr)
	case waitErr != nil:
		return waitErr
	case st.Code() != codes.OK:
		if report != nil && !report.OK() {
			fmt.Fprintf(streams.SyncErrOut(), "%s\n", report)
		}
		return &StatusError{Code: st.Code()}
	case report != nil && !report.OK():
		return report.Err()
	case fc.SidechannelErr != nil:
		return sidechannelError(fc.SidechannelErr)
	}
	return nil
}

// openData opens the source of -d: the text itself, @FILE, or @- (and
// grpcurl's @) for stdin.
func openData(data string, stdin io.Reader) (io.Reader, func(), error) {
	nop := func() {}
	switch {
	case data == "@-" || data == "@":
		return stdin, nop, nil
	case strings.HasPrefix(data, "@"):
		f, err := os.Open(data[1:])
		if err != nil {
			return nil, nil, fmt.Errorf("-d %s: %w", data, errors.Unwrap(err))
		}
		if fi, err := f.Stat(); err == nil && fi.IsDir() {
			f.Close()
			return nil, nil, fmt.Errorf("-d %s: %s is a directory: want a file of requests", data, data[1:])
		}
		return f, func() { f.Close() }, nil
	}
	return strings.NewReader(data), nop, nil
}

// waitForReverse keeps the connection for --wait-reverse and --linger.
func waitForReverse(ctx context.Context, s *client.Session, a *AnswerFlags, c *ClientFlags) error {
	if a.WaitReverse == 0 && a.Linger == 0 {
		return nil
	}
	wctx := ctx
	if a.Linger > 0 {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(ctx, a.Linger)
		defer cancel()
	}
	end := s.WaitReverse(wctx, a.WaitReverse)
	if a.WaitReverse == 0 || end == client.WaitReached {
		return nil
	}
	got := s.Conn().ReverseCalls()
	var why string
	switch {
	case interrupted(ctx):
		return errInterrupted
	case ctx.Err() != nil:
		why = fmt.Sprintf("before --max-time %s passed", c.Conn.MaxTime)
	case end == client.WaitLost || isClosed(s.Conn().Lost()):
		why = "before the server closed the connection"
	default:
		why = fmt.Sprintf("within --linger %s", a.Linger)
	}
	return fmt.Errorf("--wait-reverse %d: %d reverse %s answered %s", a.WaitReverse, got, words.Plural(got, "call was", "calls were"), why)
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// connDetails describes the connection for -vv.
func connDetails(conn *host.Conn, plaintext bool) string {
	var parts []string
	if st, ok := conn.TLSState(); ok {
		parts = append(parts, fmt.Sprintf("TLS %s", tlsVersionName(st.Version)))
		if len(st.PeerCertificates) > 0 {
			parts = append(parts, "server "+st.PeerCertificates[0].Subject.CommonName)
		}
	} else if plaintext {
		parts = append(parts, "plaintext")
	}
	if conn.Multiplexed() {
		parts = append(parts, "multiplexed, backchannel open")
	} else {
		parts = append(parts, "not multiplexed (--no-mux)")
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// heldOutput keeps what call prints while the TUI owns the terminal, and
// writes it to w on flush; later writes go straight to w.
type heldOutput struct {
	w       io.Writer
	mu      sync.Mutex
	buf     bytes.Buffer
	flushed bool
}

func (h *heldOutput) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.flushed {
		return h.w.Write(p)
	}
	return h.buf.Write(p)
}

// flush writes what was held, once.
func (h *heldOutput) flush() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.flushed {
		h.flushed = true
		_, _ = h.w.Write(h.buf.Bytes())
	}
}
