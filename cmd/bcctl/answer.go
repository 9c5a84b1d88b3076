package main

import (
	"time"

	"github.com/spf13/pflag"
	"google.golang.org/grpc/metadata"

	"github.com/bcctl/bcctl/internal/client"
	"github.com/bcctl/bcctl/internal/dynamic"
)

// AnswerFlags are the flags of the backchannel side of call and connect:
// the script that answers reverse calls, the schema of the hosted
// services, the journal, and how long to stay for reverse calls.
type AnswerFlags struct {
	// Answer is the script whose `backchannel` rules answer reverse calls.
	Answer string
	// Schema is the schema of the hosted services (--backchannel-proto,
	// --backchannel-protoset); empty means the forward schema.
	Schema SchemaFlags
	// Journal is the file to write one JSON line per call to.
	Journal string
	// WaitReverse keeps the connection until this many reverse calls have
	// been answered.
	WaitReverse int
	// Linger keeps the connection this long after the forward call.
	Linger time.Duration
}

// AddFlags adds --answer, the backchannel schema flags and --journal.
func (a *AnswerFlags) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&a.Answer, "answer", "", "script `file` whose backchannel rules answer reverse calls (docs/script.md); its expect entries decide the exit code")
	a.Schema.AddBackchannelFlags(fs)
	fs.StringVar(&a.Journal, "journal", "", "write one JSON line per forward and reverse call to `file` (docs/cli.md)")
	fs.IntVar(&a.WaitReverse, "wait-reverse", 0, "stay connected until `n` reverse calls have been answered (bounded by --max-time)")
}

// AddLingerFlag adds --linger (call only: connect stays until stopped).
func (a *AnswerFlags) AddLingerFlag(fs *pflag.FlagSet) {
	fs.Var(secondsValue{&a.Linger}, "linger", "stay connected this long after the forward call for reverse calls (`duration`; with --wait-reverse: at most this long)")
}

// Validate checks the flags on their own.
func (a *AnswerFlags) Validate() error {
	if a.WaitReverse < 0 {
		return usageErrorf("--wait-reverse %d: want a number of calls, 0 or more", a.WaitReverse)
	}
	if len(a.Schema.ImportPaths) > 0 && len(a.Schema.Protos) == 0 {
		return usageErrorf("--backchannel-import-path is only used with --backchannel-proto")
	}
	return nil
}

// backchannel is the backchannel side of a client session: the script and
// the hosted schema of the flags, with the command's Responder (nil: the
// script engine), its stop function and its forward headers.
func (a *AnswerFlags) backchannel(responder client.ResponderFactory, stop func(), headers metadata.MD) *client.Backchannel {
	return &client.Backchannel{
		Script:    a.Answer,
		Files:     a.Schema.files(),
		Responder: responder,
		Stop:      stop,
		Headers:   headers,
	}
}

// AnswerUI answers reverse calls with a person on the command's terminal:
// Factory.Interactive, for call and connect --tui. While it runs, call and
// connect print nothing on stdout: the UI owns the terminal.
type AnswerUI func(env client.ResponderEnv, io *IOStreams) (dynamic.Responder, error)

// on is ui on the terminal of io, as a session's ResponderFactory.
func (ui AnswerUI) on(io *IOStreams) client.ResponderFactory {
	return func(env client.ResponderEnv) (dynamic.Responder, error) { return ui(env, io) }
}
