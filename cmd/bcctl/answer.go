package main

import (
	"context"
	"time"

	"github.com/spf13/pflag"
	"google.golang.org/grpc/metadata"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/host"
	"github.com/bcctl/bcctl/internal/script"
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

// ResponderEnv is what a ResponderFactory gets to build the Responder that
// answers reverse calls.
type ResponderEnv struct {
	// Context ends with the command.
	Context context.Context
	// Engine runs the --answer script (an empty script without --answer):
	// its Match and RespondReceived let a script rule answer a call that a
	// person was shown first.
	Engine *script.Engine
	// Report must be told of every call the Responder answers without the
	// Engine (by is journal.ByTUI, say): it goes to the journal, to the
	// printed output, and is counted for the script's expectations.
	Report func(ev *calls.Event, by string)
	// Hosted is the schema of the hosted services (response templates);
	// Forward the server's schema and Conn the connection (forward calls
	// made by hand).
	Hosted  dynamic.Source
	Forward dynamic.Source
	Conn    *host.Conn
	// IO are the command's streams.
	IO *IOStreams
	// Stop ends the command (a person quit).
	Stop func()
	// Headers are the request metadata of forward calls (-H, --rpc-header).
	Headers metadata.MD
}

// A Responder that is also an io.Closer (the TUI's) is closed with the
// session, before the connection: its Close must not return before the
// terminal is restored.

// ResponderFactory builds the Responder that answers reverse calls. The
// default is the script Engine itself.
type ResponderFactory func(env ResponderEnv) (dynamic.Responder, error)
