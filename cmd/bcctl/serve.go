package main

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/bcctl/bcctl/internal/serve"
)

// ServeOptions are the options of `bcctl serve`.
type ServeOptions struct {
	IO      *IOStreams
	Factory *Factory

	// Listen are the addresses of the main port (host:port or unix:PATH).
	Listen []string
	// Unix reads Listen entries without a unix: prefix as socket paths.
	Unix bool
	TLS  TLSFlags
	// Schema is the schema of the services serve answers; PeerSchema the
	// schema of the services peers offer on their backchannels.
	Schema     SchemaFlags
	PeerSchema SchemaFlags
	// Script answers the forward calls; Watch reloads it when it changes.
	Script string
	Watch  bool
	// Admin is the admin API's address (loopback or unix socket only).
	Admin string
	// Journal is the journal file.
	Journal string
	// MaxCalls stops serve after that many forward calls; MaxTime after
	// that long. Grace is how long calls in flight may take to finish.
	MaxCalls uint64
	MaxTime  time.Duration
	Grace    time.Duration
	// NoDiscovery turns off reflection over each peer's backchannel.
	NoDiscovery bool
	// MaxMsgSize is the largest message serve accepts (0: gRPC's 4 MiB).
	MaxMsgSize int
	// MuxWindow is --mux-window: the yamux stream window serve advertises
	// (0: Gitaly's 16 MiB).
	MuxWindow uint32
	// Output is "auto", "text", "json" or "none"; Verbosity adds messages
	// (1) and metadata (2) to text output.
	Output    string
	Verbosity int
	// Bytes is --bytes: how the calls printed, the journal, the admin API
	// and the TUI show bytes fields.
	Bytes BytesFlag
	// AddrFile, when set, receives the addresses serve listens on once it
	// serves: "listen ADDR" lines, then "admin ADDR".
	AddrFile string
	// TUI shows the live registry and the journal in a terminal UI
	// (--tui) with UI.
	TUI bool
	// UI is the terminal UI of --tui (Factory.ServeUI); nil refuses --tui.
	UI ServeUI
}

// ServeUI runs an interactive view of a running serve until ctx ends or
// the person quits (Factory.ServeUI; the TUI's is serveInTUI). It returns
// when the view is closed, which stops serve.
type ServeUI func(ctx context.Context, env ServeUIEnv) error

// ServeUIEnv is what a ServeUI shows.
type ServeUIEnv struct {
	// Hub is the registry and journal shown: a serve's, or a proxy's.
	Hub *serve.Hub
	IO  *IOStreams
	// Listen are the addresses serve listens on.
	Listen []string
	// Program and Title, when set, name what the UI shows ("bcctl
	// proxy") and say what it does instead of where it listens.
	Program, Title string
	// Notices carries what serve would otherwise print on stderr while
	// the UI owns the terminal (script reloads, and scripts that changed
	// but do not load).
	Notices <-chan string
}

const (
	serveDefaultListen = "127.0.0.1:9000"
	serveDefaultGrace  = 5 * time.Second
)

func newServeCmd(f *Factory, runF func(context.Context, *ServeOptions) error) *cobra.Command {
	opts := &ServeOptions{IO: f.IOStreams, Factory: f, UI: f.ServeUI}
	cmd := &cobra.Command{
		Use:   "serve --proto FILE|--protoset FILE [--script FILE] [flags]",
		Short: "Run a scriptable mock upstream that calls back into its peers",
		Long: `Serve the services of a schema on --listen, answered by the rules of a
script (docs/script.md). Multiplexed peers (clients that speak Gitaly's
backchannel protocol) and plain gRPC clients share the port. The script's call
steps invoke methods on the backchannel of the calling peer, of a peer by ID,
or of every peer; on_connect steps run when a multiplexed peer arrives.
Reflection and health are served for the schema.

Each call is printed as it ends (for people on a terminal, as JSON lines in
the journal format when stdout is not one) and written to --journal. With
--admin, a second listener on a loopback address or unix socket offers the
admin API: bcctl peers lists the live registry, triggers reverse calls and
checks the expectations (docs/serve.md).

serve runs until interrupted (Ctrl-C, SIGTERM), --max-time passes or
--max-calls forward calls have been answered; calls in flight get --grace to
finish. Then the script's expect entries decide the exit code: 0 when they are
met (or there are none), 3 when not. A script or schema that does not load
exits 1; bad flags exit 2.`,
		Example: `  # Answer the corpus's services from a script, with an admin API
  bcctl serve --listen 127.0.0.1:9000 --protoset corpus.protoset --script vote.yaml \
      --admin unix:/tmp/bcctl-admin.sock

  # In CI: stop after 10 forward calls or 60s, keep a journal, exit with the expectations
  bcctl serve --listen 127.0.0.1:9000 --proto gitaly/operations.proto --proto gitaly/transaction.proto \
      --script vote.yaml --max-calls 10 --max-time 60 --journal calls.jsonl

  # Edit the script while serving: a change that does not load keeps the old one
  bcctl serve --protoset corpus.protoset --script vote.yaml --watch

  # TLS with client certificates (mTLS)
  bcctl serve --protoset corpus.protoset --script vote.yaml --cert server.pem --key server.key --cacert ca.pem`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return serveRun(cmd.Context(), opts)
		},
	}
	fs := cmd.Flags()
	fs.SortFlags = false
	fs.StringArrayVarP(&opts.Listen, "listen", "l", nil, "`address` to serve on: host:port or unix:PATH (repeatable; default "+serveDefaultListen+")")
	fs.BoolVar(&opts.Unix, "unix", false, "--listen addresses are unix socket paths")
	opts.Schema.AddFileFlags(fs)
	opts.PeerSchema.AddBackchannelFlags(fs)
	fs.StringVarP(&opts.Script, "script", "s", "", "script `file` whose rules answer forward calls (docs/script.md); without one every call gets UNIMPLEMENTED")
	fs.BoolVarP(&opts.Watch, "watch", "w", false, "reload --script when it changes; a change that does not load keeps the script in force")
	fs.StringVar(&opts.Admin, "admin", "", "serve the admin API on `address`: a loopback host:port or unix:PATH (bcctl peers uses it)")
	fs.StringVar(&opts.Journal, "journal", "", "write one JSON line per forward and reverse call to `file`")
	fs.Uint64Var(&opts.MaxCalls, "max-calls", 0, "stop after answering `n` forward calls")
	fs.Var(secondsValue{&opts.MaxTime}, "max-time", "stop after this long (`seconds` or a duration)")
	opts.Grace = serveDefaultGrace
	fs.Var(secondsValue{&opts.Grace}, "grace", "how long calls in flight may take to finish when serve stops (`seconds` or a duration)")
	fs.BoolVar(&opts.NoDiscovery, "no-discovery", false, "do not list each peer's backchannel services by reflection when it connects")
	fs.IntVar(&opts.MaxMsgSize, "max-msg-sz", 0, "largest message accepted, in `bytes` (default 4194304)")
	fs.Var(muxWindowValue{&opts.MuxWindow}, "mux-window", muxWindowUsage("16MiB, Gitaly's server's"))
	fs.StringVarP(&opts.Output, "output", "o", "auto", "`mode` of the calls printed: auto (text on a terminal, json otherwise), text, json (JSON lines), or none")
	opts.Bytes.AddFlag(fs)
	fs.CountVarP(&opts.Verbosity, "verbose", "v", "print each call's messages (-vv: also metadata), and the expectations' report when it passes")
	fs.StringVar(&opts.AddrFile, "addr-file", "", "once serving, write the addresses to `file` (\"listen ADDR\" and \"admin ADDR\" lines)")
	opts.TLS.AddServerFlags(fs)
	fs.BoolVar(&opts.TUI, "tui", false, "show the live registry and the journal in a terminal UI")
	return cmd
}
