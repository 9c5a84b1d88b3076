package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	"github.com/bcctl/bcctl/internal/admin"
	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/journal"
	"github.com/bcctl/bcctl/internal/script"
	"github.com/bcctl/bcctl/internal/serve"
)

func init() {
	registerCommand(func(f *Factory) *cobra.Command { return newServeCmd(f, nil) })
}

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
	// Output is "auto", "text", "json" or "none"; Verbosity adds messages
	// (1) and metadata (2) to text output.
	Output    string
	Verbosity int
	// AddrFile, when set, receives the addresses serve listens on once it
	// serves: "listen ADDR" lines, then "admin ADDR".
	AddrFile string
	// TUI shows the live registry and the journal in a terminal UI
	// (--tui, when built in).
	TUI bool

	// started, when set, is called once serve serves (tests).
	started func(*serve.Server, []string)
}

// ServeUI runs an interactive view of a running serve until ctx ends or
// the person quits; the TUI registers one with registerServeUI. It returns
// when the view is closed, which stops serve.
type ServeUI func(ctx context.Context, srv *serve.Server, io *IOStreams) error

var serveUI ServeUI

// registerServeUI makes `bcctl serve --tui` available (called from an init
// function of the TUI's command file).
func registerServeUI(ui ServeUI) { serveUI = ui }

const (
	serveDefaultListen = "127.0.0.1:9000"
	serveDefaultGrace  = 5 * time.Second
)

func newServeCmd(f *Factory, runF func(context.Context, *ServeOptions) error) *cobra.Command {
	opts := &ServeOptions{IO: f.IOStreams, Factory: f}
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
  bcctl serve --listen 127.0.0.1:9000 --proto gitaly/ref.proto --proto gitaly/transaction.proto \
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
	fs.StringVarP(&opts.Output, "output", "o", "auto", "`mode` of the calls printed: auto (text on a terminal, json otherwise), text, json (JSON lines), or none")
	fs.CountVarP(&opts.Verbosity, "verbose", "v", "print each call's messages (-vv: also metadata), and the expectations' report when it passes")
	fs.StringVar(&opts.AddrFile, "addr-file", "", "once serving, write the addresses to `file` (\"listen ADDR\" and \"admin ADDR\" lines)")
	opts.TLS.AddServerFlags(fs)
	if serveUI != nil {
		fs.BoolVar(&opts.TUI, "tui", false, "show the live registry and the journal in a terminal UI")
	}
	return cmd
}

// servePlan is what serve's flags resolve to before anything listens.
type servePlan struct {
	listen   []Address
	admin    *Address
	schema   dynamic.Source
	peers    dynamic.Source
	scfg     script.Config
	script   *script.Script
	loaded   []byte
	jsonOut  bool
	textOut  bool
	serveCfg serve.Config
}

// servePlanOf checks the flags and loads the schema and the script.
func servePlanOf(ctx context.Context, opts *ServeOptions) (*servePlan, error) {
	p := &servePlan{}
	switch opts.Output {
	case "auto":
		p.jsonOut = !opts.IO.IsStdoutTTY()
		p.textOut = !p.jsonOut
	case "text":
		p.textOut = true
	case "json":
		p.jsonOut = true
	case "none":
	default:
		return nil, usageErrorf("--output %q: want auto, text, json or none", opts.Output)
	}
	if opts.Watch && opts.Script == "" {
		return nil, usageErrorf("--watch reloads the --script file: give --script")
	}
	if !opts.Schema.HasFiles() {
		return nil, usageErrorf("serve needs the schema of the services it answers: give --proto or --protoset")
	}
	if err := opts.Schema.Validate(); err != nil {
		return nil, err
	}
	if err := opts.PeerSchema.Validate(); err != nil {
		return nil, err
	}
	listen := opts.Listen
	if len(listen) == 0 {
		listen = []string{serveDefaultListen}
	}
	for _, l := range listen {
		a, err := ParseAddress(l, opts.Unix)
		if err != nil {
			return nil, usageErrorf("--listen: %v", err)
		}
		p.listen = append(p.listen, a)
	}
	if opts.Admin != "" {
		a, err := ParseAddress(opts.Admin, false)
		if err != nil {
			return nil, usageErrorf("--admin: %v", err)
		}
		if err := admin.CheckAddress(ctx, a.String()); err != nil {
			if errors.Is(err, admin.ErrNotLocal) {
				return nil, usageErrorf("--admin: %v (the admin API triggers calls into peers, so it is never exposed beyond this machine)", err)
			}
			return nil, usageErrorf("--admin: %v", err)
		}
		p.admin = &a
	}
	creds, err := opts.TLS.ServerCredentials()
	if err != nil {
		return nil, err
	}

	schema, err := opts.Schema.FileSource(ctx)
	if err != nil {
		return nil, err
	}
	p.schema, p.peers = schema, schema
	if peers, err := opts.PeerSchema.FileSource(ctx); err != nil {
		return nil, err
	} else if peers != nil {
		p.peers = peers
	}
	p.scfg = script.Config{Upstream: p.schema, Backchannel: p.peers}
	if opts.Script != "" {
		data, err := os.ReadFile(opts.Script)
		if err != nil {
			return nil, fmt.Errorf("--script: %w", err)
		}
		sc, err := script.Parse(ctx, opts.Script, data, p.scfg)
		if err != nil {
			return nil, fmt.Errorf("--script %s does not load:\n%w", opts.Script, err)
		}
		p.script, p.loaded = sc, data
	} else {
		sc, err := script.Parse(ctx, "(no script)", nil, p.scfg)
		if err != nil {
			return nil, err
		}
		p.script = sc
	}

	var srvOpts []grpc.ServerOption
	var dialOpts []grpc.DialOption
	if opts.MaxMsgSize > 0 {
		srvOpts = append(srvOpts, grpc.MaxRecvMsgSize(opts.MaxMsgSize))
		dialOpts = append(dialOpts, grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(opts.MaxMsgSize)))
	}
	p.serveCfg = serve.Config{
		Schema: p.schema, PeerSchema: p.peers, Script: p.script, Creds: creds,
		Logger: opts.Factory.Logger, MaxCalls: opts.MaxCalls, NoDiscovery: opts.NoDiscovery,
		Env: opts.Factory.Getenv, ServerOptions: srvOpts, BackchannelDialOptions: dialOpts,
	}
	return p, nil
}

// serveRun runs `bcctl serve`.
func serveRun(ctx context.Context, opts *ServeOptions) error {
	plan, err := servePlanOf(ctx, opts)
	if err != nil {
		return err
	}
	stderr := opts.IO.SyncErrOut()
	cs := opts.IO.ColorScheme()

	var jw *journal.Writer
	if opts.Journal != "" {
		jw, err = journal.Create(opts.Journal, journal.Options{Resolver: plan.schema.Types()})
		if err != nil {
			return fmt.Errorf("--journal: %w", err)
		}
		defer jw.Close()
		plan.serveCfg.Journal = serve.JournalSinkFunc(func(ev *serve.Event) error {
			_, err := jw.Write(ev.Entry())
			return err
		})
	}

	srv, err := serve.New(plan.serveCfg)
	if err != nil {
		return err
	}
	// Listen on everything first, so that a port in use fails before
	// anything is served.
	var listeners []net.Listener
	closeAll := func() {
		for _, l := range listeners {
			l.Close()
		}
	}
	for _, a := range plan.listen {
		lis, err := a.Listen()
		if err != nil {
			closeAll()
			srv.Shutdown(ctx)
			return err
		}
		listeners = append(listeners, lis)
	}
	var adminLis net.Listener
	if plan.admin != nil {
		adminLis, err = plan.admin.Listen()
		if err != nil {
			closeAll()
			srv.Shutdown(ctx)
			return fmt.Errorf("--admin: %w", err)
		}
	}
	var listenURLs []string
	for _, l := range listeners {
		listenURLs = append(listenURLs, serve.ListenURL(l))
	}

	// Printing: calls as they end, and peers as they come and go.
	var printers sync.WaitGroup
	printCtx, stopPrinting := context.WithCancel(context.Background())
	defer stopPrinting()
	if !opts.TUI && (plan.textOut || plan.jsonOut) {
		pr := &servePrinter{w: opts.IO.SyncOut(), json: plan.jsonOut, verbosity: opts.Verbosity, cs: cs}
		sub := srv.Subscribe(printCtx, serve.SubscribeOptions{Follow: true})
		printers.Add(1)
		go func() {
			defer printers.Done()
			for ev := range sub.C {
				pr.event(ev)
			}
			if err := sub.Err(); err != nil {
				fmt.Fprintf(stderr, "bcctl serve: stopped printing calls: %v (the --journal file and the admin API still have every call)\n", err)
			}
		}()
		if plan.textOut {
			_, changes := srv.WatchPeers(printCtx)
			printers.Add(1)
			go func() {
				defer printers.Done()
				for c := range changes {
					pr.peer(c)
				}
			}()
		}
	}

	serveErr := make(chan error, len(listeners)+1)
	var serving sync.WaitGroup
	for _, l := range listeners {
		serving.Add(1)
		go func() {
			defer serving.Done()
			if err := srv.Serve(l); err != nil {
				serveErr <- fmt.Errorf("serve on %s: %w", serve.ListenURL(l), err)
			}
		}()
	}
	var adminSrv *grpc.Server
	if adminLis != nil {
		adminSrv, err = admin.NewServer(srv, admin.Options{Listen: listenURLs, Logger: opts.Factory.Logger})
		if err != nil {
			closeAll()
			adminLis.Close()
			srv.Shutdown(ctx)
			return err
		}
		serving.Add(1)
		go func() {
			defer serving.Done()
			if err := adminSrv.Serve(adminLis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				serveErr <- fmt.Errorf("admin API on %s: %w", serve.ListenURL(adminLis), err)
			}
		}()
	}

	// Tell the world.
	var b strings.Builder
	fmt.Fprintf(&b, "bcctl serve: listening on %s (gRPC and backchannel peers on one port)\n", strings.Join(listenURLs, ", "))
	if adminLis != nil {
		fmt.Fprintf(&b, "bcctl serve: admin API on %s (bcctl peers %s)\n", serve.ListenURL(adminLis), serve.ListenURL(adminLis))
	}
	fmt.Fprintf(&b, "bcctl serve: script %s: %s\n", plan.script.Name, serveScriptSummary(plan.script))
	_, _ = stderr.Write([]byte(b.String()))
	if opts.AddrFile != "" {
		if err := serveWriteAddrFile(opts.AddrFile, listenURLs, adminLis); err != nil {
			fmt.Fprintf(stderr, "bcctl serve: --addr-file: %v\n", err)
		}
	}
	if opts.started != nil {
		opts.started(srv, listenURLs)
	}

	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	if opts.Watch {
		printers.Add(1)
		go func() {
			defer printers.Done()
			srv.WatchScript(runCtx, serve.WatchOptions{
				Path: opts.Script, Loaded: plan.loaded,
				Load: func(ctx context.Context, src []byte) (*script.Script, error) {
					return script.Parse(ctx, opts.Script, src, plan.scfg)
				},
				Report: func(o serve.ReloadOutcome) {
					if o.Err != nil {
						fmt.Fprintf(stderr, "bcctl serve: %s changed but does not load; the previous script stays in force:\n%v\n", opts.Script, o.Err)
						return
					}
					fmt.Fprintf(stderr, "bcctl serve: %s reloaded: %s\n", opts.Script, serveScriptSummary(o.Script))
				},
			})
		}()
	}

	// Run until something says stop.
	var maxTime <-chan time.Time
	if opts.MaxTime > 0 {
		t := time.NewTimer(opts.MaxTime)
		defer t.Stop()
		maxTime = t.C
	}
	uiDone := make(chan error, 1)
	if opts.TUI {
		go func() { uiDone <- serveUI(runCtx, srv, opts.IO) }()
	}
	var reason string
	var runErr error
	select {
	case <-ctx.Done():
		reason = "interrupted"
		if !interrupted(ctx) {
			reason = context.Cause(ctx).Error()
		}
	case <-maxTime:
		reason = fmt.Sprintf("--max-time %s passed", opts.MaxTime)
	case <-srv.StopRequested():
		reason = srv.StopReason()
	case runErr = <-serveErr:
		reason = "a listener failed"
	case runErr = <-uiDone:
		reason = "the terminal UI was closed"
	}
	cancelRun()

	gctx, cancelGrace := context.WithTimeout(context.Background(), opts.Grace)
	defer cancelGrace()
	shutErr := srv.Shutdown(gctx)
	if adminSrv != nil {
		adminSrv.Stop()
	}
	serving.Wait()
	stopPrinting()
	printers.Wait()
	if opts.TUI && runErr == nil && reason != "the terminal UI was closed" {
		<-uiDone
	}

	st := srv.Stats()
	fmt.Fprintf(stderr, "bcctl serve: stopped (%s) after %s: %d forward calls answered, %d reverse calls made\n",
		reason, time.Since(st.Started).Round(time.Millisecond), st.ForwardCalls, st.ReverseCalls)
	if shutErr != nil {
		fmt.Fprintf(stderr, "bcctl serve: %v\n", shutErr)
	}
	var errs []error
	if runErr != nil {
		errs = append(errs, runErr)
	}
	if jw != nil {
		if err := jw.Close(); err != nil {
			errs = append(errs, fmt.Errorf("--journal %s lost entries: %w", opts.Journal, err))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	report := srv.Check()
	if len(report.Results) == 0 {
		return nil
	}
	if err := report.Err(); err != nil {
		return err
	}
	if opts.Verbosity > 0 {
		fmt.Fprintln(stderr, report.String())
	}
	return nil
}

// serveScriptSummary counts what a script holds.
func serveScriptSummary(sc *script.Script) string {
	parts := []string{servePlural(len(sc.Rules), "rule")}
	if sc.HasOnConnect() {
		parts = append(parts, "on_connect")
	}
	parts = append(parts, servePlural(len(sc.Expectations), "expectation"))
	return strings.Join(parts, ", ")
}

// servePlural formats "1 rule", "2 rules".
func servePlural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// serveWriteAddrFile writes the addresses for scripts that start serve on
// port 0: it is written whole and renamed into place, so a reader never
// sees half of it.
func serveWriteAddrFile(path string, listen []string, adminLis net.Listener) error {
	var b strings.Builder
	for _, l := range listen {
		fmt.Fprintf(&b, "listen %s\n", l)
	}
	if adminLis != nil {
		fmt.Fprintf(&b, "admin %s\n", serve.ListenURL(adminLis))
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
