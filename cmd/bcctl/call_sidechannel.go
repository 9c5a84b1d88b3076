package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/client"
	"github.com/bcctl/bcctl/internal/script"
	"github.com/bcctl/bcctl/internal/words"
)

// SidechannelFlags are call's --sidechannel-in and --sidechannel-out: the
// body the call sends through its sidechannel and where the server's
// response goes.
type SidechannelFlags struct {
	// In is the body: a file, or "-" for stdin; "" sends the --answer
	// script's body for the method, or nothing.
	In string
	// Out receives the response: a file, or "-" for stdout (what call
	// prints goes to stderr then); "" discards it, saying how much came.
	Out string
}

// AddFlags adds the sidechannel flags.
func (f *SidechannelFlags) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&f.In, "sidechannel-in", "", "send `file` (- for stdin) through the call's sidechannel, Gitaly's raw stream beside the call")
	fs.StringVar(&f.Out, "sidechannel-out", "", "write what the server sends through the call's sidechannel to `file` (- for stdout; call's own output then goes to stderr)")
}

// given reports whether either flag is set.
func (f *SidechannelFlags) given() bool { return f.In != "" || f.Out != "" }

// validate checks the flags against call's others.
func (f *SidechannelFlags) validate(opts *CallOptions) error {
	switch {
	case f.given() && opts.Client.Conn.NoMux:
		return usageErrorf("--sidechannel-in and --sidechannel-out need the backchannel: a sidechannel travels on the multiplexed connection, which --no-mux turns off")
	case f.In == "-" && (opts.Data == "@-" || opts.Data == "@"):
		return usageErrorf("-d @- and --sidechannel-in - cannot both read stdin")
	case f.In == "-" && opts.TUI:
		return usageErrorf("--tui reads the keyboard: --sidechannel-in - cannot read stdin too")
	case f.Out == "-" && opts.TUI:
		return usageErrorf("--tui draws on the terminal: --sidechannel-out - cannot write there too")
	}
	return nil
}

// wants reports whether a call to method gets a sidechannel: when the
// flags are given, when the method is one of Gitaly's ...WithSidechannel
// methods, or when the --answer script answers its sidechannel.
func (f *SidechannelFlags) wants(method string, answer *script.SidechannelAnswer, noMux bool) bool {
	if noMux {
		return false
	}
	return f.given() || strings.HasSuffix(method, "WithSidechannel") || answer != nil
}

// open returns the call's client.Sidechannel over the flags' files; close
// closes them (its error is a response file that could not be written).
func (f *SidechannelFlags) open(streams *IOStreams, answer *script.SidechannelAnswer) (sc *client.Sidechannel, closeFiles func() error, err error) {
	sc = &client.Sidechannel{Answer: answer}
	var closers []func() error
	closeFiles = func() error {
		var errs []error
		for _, c := range closers {
			errs = append(errs, c())
		}
		return errors.Join(errs...)
	}
	switch f.In {
	case "":
	case "-":
		sc.Body = streams.In
	default:
		in, err := os.Open(f.In)
		if err != nil {
			return nil, nil, fmt.Errorf("--sidechannel-in: %w", err)
		}
		sc.Body = in
		closers = append(closers, in.Close)
	}
	switch f.Out {
	case "":
	case "-":
		sc.Response = streams.Out
	default:
		out, err := os.Create(f.Out)
		if err != nil {
			closeFiles()
			return nil, nil, fmt.Errorf("--sidechannel-out: %w", err)
		}
		sc.Response = out
		closers = append(closers, func() error {
			if err := out.Close(); err != nil {
				return fmt.Errorf("--sidechannel-out: %w", err)
			}
			return nil
		})
	}
	return sc, closeFiles, nil
}

// reportSidechannel prints what went through the call's sidechannel:
// every detail with -v; without -v and without --sidechannel-out, how much
// of the response was discarded, so that nothing is dropped silently.
func reportSidechannel(out, errOut io.Writer, rec *calls.Sidechannel, f *SidechannelFlags, verbosity int) {
	if rec == nil {
		return
	}
	if verbosity > 0 {
		fmt.Fprintf(out, "\n%s\n", sidechannelSummary(rec))
		return
	}
	if f.Out == "" && rec.ResponseBytes > 0 {
		fmt.Fprintf(errOut, "sidechannel: %s arrived and %s discarded (--sidechannel-out FILE keeps them)\n",
			words.Bytes(rec.ResponseBytes), words.Plural(rec.ResponseBytes, "was", "were"))
	}
}

// sidechannelSummary is the -v line of a sidechannel.
func sidechannelSummary(rec *calls.Sidechannel) string {
	side := func(n int64, sum string) string {
		if sum == "" {
			return words.Bytes(n)
		}
		return words.Bytes(n) + " (sha256 " + sum + ")"
	}
	s := fmt.Sprintf("Sidechannel %d: sent %s, received %s in %s", rec.ID,
		side(rec.BodyBytes, rec.BodySHA256), side(rec.ResponseBytes, rec.ResponseSHA256), rec.Duration.Round(time.Microsecond))
	if rec.Fault != "" {
		s += "; fault " + rec.Fault
	}
	if rec.Err != "" {
		s += "; " + rec.Err
	}
	return s
}

// sidechannelError is the command's error for a call that succeeded while
// its sidechannel failed: the call's error, as for Gitaly's clients. An
// unmet script expectation keeps its exit code.
func sidechannelError(err error) error {
	if errors.Is(err, script.ErrExpectationsFailed) {
		return err
	}
	return fmt.Errorf("the call succeeded, but its sidechannel failed: %w", err)
}
