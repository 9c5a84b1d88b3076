package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/bcctl/bcctl/internal/admin"
	"github.com/bcctl/bcctl/internal/journal"
	"github.com/bcctl/bcctl/internal/script"
	"github.com/bcctl/bcctl/internal/serve"
)

// serveRun runs `bcctl serve`.
func serveRun(ctx context.Context, opts *ServeOptions) error {
	plan, err := servePlanOf(ctx, opts)
	if err != nil {
		return err
	}
	stderr := opts.IO.SyncErrOut()
	cs := opts.IO.ColorScheme()

	// serve's news go to stderr, or to the UI while it owns the terminal,
	// and so do the diagnostics of its logger.
	notify := func(msg string) { fmt.Fprintf(stderr, "bcctl serve: %s\n", msg) }
	logger := opts.Factory.Logger
	var notices chan string
	if opts.TUI {
		notices = make(chan string, 16)
		notify = func(msg string) {
			select {
			case notices <- msg:
			default: // the UI is not keeping up; the newest notice is what matters
			}
		}
		logger = slog.New(slog.NewTextHandler(noticeWriter(notify), &slog.HandlerOptions{
			Level: slog.LevelWarn,
			ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
				if a.Key == slog.TimeKey { // the UI shows news as they come
					return slog.Attr{}
				}
				return a
			},
		}))
		plan.serveCfg.Logger = logger
	}

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
		adminSrv, err = admin.NewServer(srv, admin.Options{Listen: listenURLs, Logger: logger})
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
						notify(fmt.Sprintf("%s changed but does not load; the previous script stays in force:\n%v", opts.Script, o.Err))
						return
					}
					notify(fmt.Sprintf("%s reloaded: %s", opts.Script, serveScriptSummary(o.Script)))
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
		go func() {
			uiDone <- opts.UI(runCtx, ServeUIEnv{Server: srv, IO: opts.IO, Listen: listenURLs, Notices: notices})
		}()
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

// noticeWriter turns each write (a slog.TextHandler writes one record at a
// time) into a notice.
type noticeWriter func(string)

func (w noticeWriter) Write(p []byte) (int, error) {
	w(strings.TrimSpace(string(p)))
	return len(p), nil
}
