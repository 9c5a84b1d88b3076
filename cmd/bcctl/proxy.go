package main

import (
	"context"
	"time"

	"github.com/spf13/cobra"
)

// ProxyOptions are the options of `bcctl proxy`.
type ProxyOptions struct {
	IO      *IOStreams
	Factory *Factory

	// Listen are the addresses clients connect to (host:port or
	// unix:PATH); Upstream is where the proxy connects for each of them.
	Listen   []string
	Upstream string
	// ListenTLS secures the listening side (serve's --cert, --key,
	// --cacert); UpstreamTLS the upstream side (call's flags, with the
	// certificate files as --upstream-*).
	ListenTLS   TLSFlags
	UpstreamTLS TLSFlags
	// Schema decodes forward calls (files, or reflection on the upstream);
	// PeerSchema decodes reverse calls (default: Schema).
	Schema     SchemaFlags
	PeerSchema SchemaFlags
	// Journal is the journal file.
	Journal string
	// Script tampers with the calls: its rules decide, per call and per
	// direction, whether the proxy relays it (the default), answers it,
	// delays it or relays it and changes the answer; its expectations
	// decide the exit code.
	Script string
	// Record, when set, is where the proxy writes, when it stops, a
	// script that replays the session (docs/proxy.md).
	Record string
	// MaxTime stops the proxy after that long; Grace is how long calls in
	// flight may take to finish when it stops.
	MaxTime time.Duration
	Grace   time.Duration
	// ConnectTimeout bounds each connection to the upstream.
	ConnectTimeout time.Duration
	// MaxMsgSize is the largest message relayed (0: gRPC's 4 MiB).
	MaxMsgSize int
	// Output is "auto", "text", "json" or "none"; Verbosity adds the calls'
	// starts and messages (1) and metadata (2) to text output.
	Output    string
	Verbosity int
	// Bytes is --bytes: how the calls printed and the journal show bytes
	// fields.
	Bytes BytesFlag
	// AddrFile, when set, receives the addresses the proxy listens on.
	AddrFile string
	// Admin is the admin API's address (loopback or unix socket only):
	// bcctl peers lists the proxy's clients and calls into them.
	Admin string
	// TUI shows the clients and one timeline of both directions in a
	// terminal UI (--tui) with UI.
	TUI bool
	// UI is the terminal UI of --tui (Factory.ServeUI, which shows a
	// proxy's hub as it shows a serve's); nil refuses --tui.
	UI ServeUI
}

const proxyDefaultListen = "127.0.0.1:9001"

func newProxyCmd(f *Factory, runF func(context.Context, *ProxyOptions) error) *cobra.Command {
	opts := &ProxyOptions{IO: f.IOStreams, Factory: f, UI: f.ServeUI}
	cmd := &cobra.Command{
		Use:   "proxy --listen ADDR --upstream ADDR [flags]",
		Short: "Sit between a backchannel client and its server: relay, watch and record both directions",
		Long: `Relay every call between the clients that connect to --listen and the server at
--upstream, in both directions, without needing their schema: the clients'
forward calls go to the upstream, and the reverse calls the upstream makes on a
client's backchannel come back to that client. Each client connection gets its
own upstream connection of the same kind (multiplexed when the client did the
backchannel handshake, plain when it did not). Streams the upstream opens that
are not gRPC (Gitaly's sidechannel) are piped to the client byte for byte.

Each call is printed as it ends, reverse calls and side streams under the
forward call that caused them (for people on a terminal; -v also prints each
call as it starts, and its messages), or as journal lines when stdout is not a
terminal. --journal writes the same lines to a file. Messages are decoded when
a schema knows them (--proto, --protoset, or reflection on the upstream; for
reverse calls --backchannel-proto, or else reflection over the client's own
backchannel) and kept as base64 otherwise.

The listening side uses TLS when given --cert and --key (mTLS with --cacert),
as serve does; the upstream side uses TLS unless --plaintext, as call does,
with --upstream-cacert, --upstream-cert and --upstream-key for its files.

proxy runs until interrupted (Ctrl-C, SIGTERM) or --max-time passes; calls in
flight get --grace to finish. With --script, the script's expect entries then
decide the exit code (0 met, 3 not), as in serve (docs/proxy.md).`,
		Example: `  # Watch Praefect and Gitaly talk, both directions
  bcctl proxy --listen 127.0.0.1:9001 --upstream 127.0.0.1:9000 --plaintext

  # Decode with the schema's files, and keep a journal
  bcctl proxy --upstream unix:/run/gitaly.sock --plaintext --protoset gitaly.protoset --journal calls.jsonl

  # Make the third vote come back ABORTED, and check that it did
  bcctl proxy --upstream 127.0.0.1:9000 --plaintext --protoset corpus.protoset --script tamper.yaml

  # TLS on both sides: the proxy's own certificate, and the upstream's CA
  bcctl proxy --listen :9001 --cert proxy.pem --key proxy.key --upstream gitaly:9000 --upstream-cacert ca.pem`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return proxyRun(cmd.Context(), opts)
		},
	}
	fs := cmd.Flags()
	fs.SortFlags = false
	fs.StringArrayVarP(&opts.Listen, "listen", "l", nil, "`address` clients connect to: host:port or unix:PATH (repeatable; default "+proxyDefaultListen+")")
	fs.StringVarP(&opts.Upstream, "upstream", "u", "", "`address` of the server to relay to: host:port or unix:PATH (required)")
	opts.Schema.AddFlags(fs)
	opts.PeerSchema.AddBackchannelFlags(fs)
	fs.StringVar(&opts.Journal, "journal", "", "write one JSON line per relayed call and side stream to `file`")
	fs.StringVarP(&opts.Script, "script", "s", "", "script `file` whose rules (forward calls) and backchannel rules (reverse calls) relay, answer, delay or change the calls (docs/proxy.md); its expectations decide the exit code")
	fs.StringVar(&opts.Record, "record", "", "when the proxy stops, write to `file` a script that replays the session: serve --script plays the upstream, call/connect --answer the client")
	fs.Var(secondsValue{&opts.MaxTime}, "max-time", "stop after this long (`seconds` or a duration)")
	opts.Grace = serveDefaultGrace
	fs.Var(secondsValue{&opts.Grace}, "grace", "how long calls in flight may take to finish when the proxy stops (`seconds` or a duration)")
	opts.ConnectTimeout = 10 * time.Second
	fs.Var(secondsValue{&opts.ConnectTimeout}, "connect-timeout", "how long to wait for each connection to the upstream (`seconds` or a duration)")
	fs.IntVar(&opts.MaxMsgSize, "max-msg-sz", 0, "largest message relayed, in `bytes` (default 4194304)")
	fs.StringVarP(&opts.Output, "output", "o", "auto", "`mode` of the calls printed: auto (text on a terminal, json otherwise), text, json (JSON lines), or none")
	opts.Bytes.AddFlag(fs)
	fs.CountVarP(&opts.Verbosity, "verbose", "v", "print each call as it starts, and its messages (-vv: also metadata)")
	fs.StringVar(&opts.AddrFile, "addr-file", "", "once listening, write the addresses to `file` (\"listen ADDR\" and \"admin ADDR\" lines)")
	fs.StringVar(&opts.Admin, "admin", "", "serve the admin API on `address`: a loopback host:port or unix:PATH (bcctl peers lists the clients and calls into them)")
	fs.BoolVar(&opts.TUI, "tui", false, "show the clients and the calls both ways in a terminal UI")
	opts.ListenTLS.AddServerFlags(fs)
	opts.UpstreamTLS.AddUpstreamFlags(fs)
	return cmd
}
