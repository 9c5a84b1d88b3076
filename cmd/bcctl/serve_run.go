package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/bcctl/bcctl/internal/admin"
	"github.com/bcctl/bcctl/internal/journal"
	"github.com/bcctl/bcctl/internal/script"
	"github.com/bcctl/bcctl/internal/serve"
	"github.com/bcctl/bcctl/internal/words"
)

// serveRun runs `bcctl serve`: the flags resolved into a plan, the
// lifecycle to serve.Run, and what is printed to this file.
func serveRun(ctx context.Context, opts *ServeOptions) error {
	plan, err := servePlanOf(ctx, opts)
	if err != nil {
		return err
	}
	stderr := opts.IO.SyncErrOut()
	news := newServeNews(opts, stderr)
	plan.serveCfg.Logger = news.logger(opts.Factory.Logger)

	var jw *journal.Writer
	if opts.Journal != "" {
		jw, err = journal.Create(opts.Journal, journal.Options{Resolver: plan.schema.Types(), Buffered: true})
		if err != nil {
			return fmt.Errorf("--journal: %w", err)
		}
		defer jw.Close()
		plan.serveCfg.Journal = journalSink(jw)
	}
	srv, err := serve.New(plan.serveCfg)
	if err != nil {
		return err
	}
	stopped, err := serve.Run(ctx, serveRunConfig(opts, plan, srv, news))
	if err != nil {
		return err
	}

	st := srv.Stats()
	var cut string
	if st.CutCalls > 0 {
		cut = fmt.Sprintf(", %s cut short by the stop (their clients got UNAVAILABLE)", words.Count(st.CutCalls, "forward call"))
	}
	fmt.Fprintf(stderr, "bcctl serve: stopped (%s) after %s: %s answered, %s made%s\n",
		runStopText(stopped, opts.MaxTime), time.Since(st.Started).Round(time.Millisecond), words.Count(st.ForwardCalls, "forward call"), words.Count(st.ReverseCalls, "reverse call"), cut)
	if stopped.ShutdownErr != nil {
		fmt.Fprintf(stderr, "bcctl serve: %v\n", stopped.ShutdownErr)
	}
	var errs []error
	if stopped.Err != nil {
		errs = append(errs, stopped.Err)
	}
	if jw != nil {
		if err := jw.Close(); err != nil {
			errs = append(errs, fmt.Errorf("--journal %s: %w", opts.Journal, err))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return checkExpectations(srv.Check(), opts.Verbosity, stderr)
}

// serveRunConfig is what serve.Run runs for `bcctl serve`: the listeners
// and the admin API of the plan, the printers (or the terminal UI), and
// the script watch.
func serveRunConfig(opts *ServeOptions, plan *servePlan, srv *serve.Server, news *serveNews) serve.RunConfig {
	rc := serve.RunConfig{
		Service: srv,
		MaxTime: opts.MaxTime,
		Grace:   opts.Grace,
		Serving: func(l serve.Listening) { serveAnnounce(opts, plan.script, l, news.stderr) },
	}
	for _, a := range plan.listen {
		rc.Listen = append(rc.Listen, a.Listen)
	}
	if plan.admin != nil {
		rc.Admin = runAdmin(plan.admin, srv, admin.Options{Logger: plan.serveCfg.Logger})
	}
	if opts.TUI {
		rc.Foreground = func(ctx context.Context, l serve.Listening) error {
			return opts.UI(ctx, ServeUIEnv{Hub: srv.Hub, IO: opts.IO, Listen: l.Listen, Notices: news.notices})
		}
	} else if plan.textOut || plan.jsonOut {
		pr := &servePrinter{w: opts.IO.SyncOut(), json: plan.jsonOut, verbosity: opts.Verbosity, cs: opts.IO.ColorScheme()}
		rc.Followers = append(rc.Followers, func(ctx context.Context) func() {
			sub := srv.Subscribe(ctx, serve.SubscribeOptions{Follow: true})
			return func() {
				for ev := range sub.C {
					pr.event(ev)
				}
				if err := sub.Err(); err != nil {
					fmt.Fprintf(news.stderr, "bcctl serve: stopped printing calls: %v (the --journal file and the admin API still have every call)\n", err)
				}
			}
		})
		if plan.textOut {
			rc.Followers = append(rc.Followers, func(ctx context.Context) func() {
				_, changes := srv.WatchPeers(ctx)
				return func() {
					for c := range changes {
						pr.peer(c)
					}
				}
			})
		}
	}
	if opts.Watch {
		rc.Background = append(rc.Background, func(ctx context.Context) {
			srv.WatchScript(ctx, serve.WatchOptions{
				Path: opts.Script, Loaded: plan.loaded,
				Load: func(ctx context.Context, src []byte) (*script.Script, error) {
					return script.Parse(ctx, opts.Script, src, plan.scfg)
				},
				Report: func(o serve.ReloadOutcome) {
					if o.Err != nil {
						news.notify(fmt.Sprintf("%s changed but does not load; the previous script stays in force:\n%v", opts.Script, o.Err))
						return
					}
					news.notify(fmt.Sprintf("%s reloaded: %s", opts.Script, serveScriptSummary(o.Script)))
				},
			})
		})
	}
	return rc
}

// serveAnnounce says where serve listens, once it does, and writes
// --addr-file.
func serveAnnounce(opts *ServeOptions, sc *script.Script, l serve.Listening, stderr io.Writer) {
	var b strings.Builder
	fmt.Fprintf(&b, "bcctl serve: listening on %s (gRPC and backchannel peers on one port)\n", strings.Join(l.Listen, ", "))
	if l.Admin != "" {
		fmt.Fprintf(&b, "bcctl serve: admin API on %s (bcctl peers %s)\n", l.Admin, l.Admin)
	}
	fmt.Fprintf(&b, "bcctl serve: script %s: %s\n", sc.Name, serveScriptSummary(sc))
	_, _ = io.WriteString(stderr, b.String())
	if opts.AddrFile != "" {
		if err := serveWriteAddrFile(opts.AddrFile, l); err != nil {
			fmt.Fprintf(stderr, "bcctl serve: --addr-file: %v\n", err)
		}
	}
}

// serveNews carries what serve reports while it runs (script reloads, the
// logger's diagnostics): to stderr, or to the terminal UI while it owns
// the terminal.
type serveNews struct {
	stderr io.Writer
	// notices is the UI's channel; nil without --tui.
	notices chan string
}

func newServeNews(opts *ServeOptions, stderr io.Writer) *serveNews {
	n := &serveNews{stderr: stderr}
	if opts.TUI {
		n.notices = make(chan string, 16)
	}
	return n
}

// notify reports msg.
func (n *serveNews) notify(msg string) {
	if n.notices == nil {
		fmt.Fprintf(n.stderr, "bcctl serve: %s\n", msg)
		return
	}
	select {
	case n.notices <- msg:
	default: // the UI is not keeping up; the newest notice is what matters
	}
}

// logger returns the logger of serve's diagnostics: base, or under the UI
// one whose records (warnings and worse) become notices.
func (n *serveNews) logger(base *slog.Logger) *slog.Logger {
	if n.notices == nil {
		return base
	}
	return slog.New(slog.NewTextHandler(noticeWriter(n.notify), &slog.HandlerOptions{
		Level: slog.LevelWarn,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey { // the UI shows news as they come
				return slog.Attr{}
			}
			return a
		},
	}))
}

// serveScriptSummary counts what a script holds.
func serveScriptSummary(sc *script.Script) string {
	parts := []string{words.Count(len(sc.Rules), "rule")}
	if sc.HasOnConnect() {
		parts = append(parts, "on_connect")
	}
	parts = append(parts, words.Count(len(sc.Expectations), "expectation"))
	return strings.Join(parts, ", ")
}

// serveWriteAddrFile writes the addresses for scripts that start serve on
// port 0: it is written whole and renamed into place, so a reader never
// sees half of it.
func serveWriteAddrFile(path string, l serve.Listening) error {
	var b strings.Builder
	for _, a := range l.Listen {
		fmt.Fprintf(&b, "listen %s\n", a)
	}
	if l.Admin != "" {
		fmt.Fprintf(&b, "admin %s\n", l.Admin)
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
