package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/bcctl/bcctl/internal/admin"
	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/journal"
	"github.com/bcctl/bcctl/internal/proxy"
	"github.com/bcctl/bcctl/internal/script"
	"github.com/bcctl/bcctl/internal/serve"
	"github.com/bcctl/bcctl/internal/words"
)

// proxyRun runs `bcctl proxy`: the flags resolved into a plan, the
// lifecycle to serve.Run (the proxy is the Service it serves), and what is
// printed to proxy_output.go.
func proxyRun(ctx context.Context, opts *ProxyOptions) error {
	plan, err := proxyPlanOf(ctx, opts)
	if err != nil {
		return err
	}
	defer plan.close()
	stderr := opts.IO.SyncErrOut()

	w := &proxyWatch{decoder: plan.decoder, started: time.Now()}
	if (plan.textOut || plan.jsonOut) && !opts.TUI {
		w.printer = &proxyPrinter{w: opts.IO.SyncOut(), json: plan.jsonOut, verbosity: opts.Verbosity, cs: opts.IO.ColorScheme()}
	}
	var jw *journal.Writer
	if opts.Journal != "" {
		jw, err = journal.Create(opts.Journal, journal.Options{Buffered: true})
		if err != nil {
			return fmt.Errorf("--journal: %w", err)
		}
		defer jw.Close()
	}
	if opts.Record != "" {
		w.record = &proxyRecorder{path: opts.Record, decoder: plan.decoder}
	}
	if plan.script != nil {
		w.tamper = newProxyTamper(plan.script, plan.decoder, plan.upstream.String(), script.Options{Logger: opts.Factory.Logger, Env: opts.Factory.Getenv})
		plan.cfg.Tamper = w.tamper
	}
	plan.cfg.Observer = w
	// The hub numbers the proxy's calls with the rest of its journal; it
	// exists once the proxy (whose clients it follows) does, before any
	// client can connect.
	var hub *serve.Hub
	plan.cfg.NewID = func() uint64 { return hub.NextID() }
	p, err := proxy.New(plan.cfg)
	if err != nil {
		return err
	}
	if plan.decoder.Reverse == nil && plan.cfg.KeepMessages > 0 {
		// No schema of the clients' backchannels: each client's is asked
		// for, by reflection over it, when a reverse call needs it.
		plan.decoder.Clients = proxy.NewClientSchemas(p, opts.ConnectTimeout)
	}
	hub, err = serve.NewHub(proxyHubConfig(opts, plan, p, jw, w.tamper, w.printer))
	if err != nil {
		return err
	}
	w.hub = hub
	if w.tamper != nil {
		w.tamper.hub = hub
		if w.printer != nil {
			w.tamper.made = func(ev *serve.Event) { w.printer.entry(ev.Entry()) }
		}
	}
	backend := proxyBackend{Hub: hub, schema: hub.PeerSchema(), tamper: w.tamper}
	if plan.decoder.Forward != nil {
		backend.schema = plan.decoder.Forward
	}
	rc := serve.RunConfig{
		Service: proxyService{Proxy: p, hub: hub, watch: w},
		MaxTime: opts.MaxTime,
		Grace:   opts.Grace,
		Serving: func(l serve.Listening) { proxyAnnounce(opts, plan, l, stderr) },
	}
	if plan.admin != nil {
		rc.Admin = runAdmin(plan.admin, backend, admin.Options{Kind: "proxy", Upstream: plan.upstream.String(), Logger: opts.Factory.Logger})
	}
	if opts.TUI {
		rc.Foreground = func(ctx context.Context, l serve.Listening) error {
			title := fmt.Sprintf("%s → %s", strings.Join(l.Listen, ", "), plan.upstream)
			return opts.UI(ctx, ServeUIEnv{Hub: hub, IO: opts.IO, Listen: l.Listen, Program: "bcctl proxy", Title: title})
		}
	}
	for _, a := range plan.listen {
		rc.Listen = append(rc.Listen, a.Listen)
	}
	stopped, err := serve.Run(ctx, rc)
	if err != nil {
		return err
	}

	fmt.Fprintf(stderr, "bcctl proxy: stopped (%s) after %s: %s\n",
		runStopText(stopped, opts.MaxTime), time.Since(w.started).Round(time.Millisecond), w.summary())
	if stopped.ShutdownErr != nil {
		fmt.Fprintf(stderr, "bcctl proxy: %v\n", stopped.ShutdownErr)
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
	if w.record != nil {
		if err := w.record.write(context.WithoutCancel(ctx), proxyRecordedAbout(plan)); err != nil {
			errs = append(errs, err)
		} else {
			fmt.Fprintf(stderr, "bcctl proxy: recorded the session in %s\n", opts.Record)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if w.tamper == nil {
		return nil
	}
	return checkExpectations(w.tamper.forward.Check(), opts.Verbosity, stderr)
}

// proxyAnnounce says where the proxy listens and where it relays to, once
// it listens, and writes --addr-file.
func proxyAnnounce(opts *ProxyOptions, plan *proxyPlan, l serve.Listening, stderr io.Writer) {
	security := "TLS"
	if !opts.UpstreamTLS.IsTLS() {
		security = "plaintext"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "bcctl proxy: listening on %s (gRPC and backchannel clients on one port)\n", strings.Join(l.Listen, ", "))
	fmt.Fprintf(&b, "bcctl proxy: relaying to %s (%s), each client over its own connection\n", plan.upstream, security)
	if sc := plan.script; sc != nil {
		fmt.Fprintf(&b, "bcctl proxy: script %s: %s, %s, %s\n", sc.Name, words.Count(len(sc.Rules), "rule"),
			words.Count(len(sc.Backchannel), "backchannel rule"), words.Count(len(sc.Expectations), "expectation"))
	}
	if l.Admin != "" {
		fmt.Fprintf(&b, "bcctl proxy: admin API on %s (bcctl peers %s)\n", l.Admin, l.Admin)
	}
	_, _ = io.WriteString(stderr, b.String())
	if opts.AddrFile != "" {
		if err := serveWriteAddrFile(opts.AddrFile, l); err != nil {
			fmt.Fprintf(stderr, "bcctl proxy: --addr-file: %v\n", err)
		}
	}
}

// proxyHubConfig is the hub of a proxy: the clients it relays for are its
// peers, its journal is --journal. The proxy never calls into a client on
// its own (no discovery by reflection): a client sees only the calls the
// upstream makes, and those a person asks for (bcctl peers call, the TUI).
//
// With --script, the script's on_connect steps run for each client that
// did the backchannel handshake; printer (nil: none) says when they fail.
func proxyHubConfig(opts *ProxyOptions, plan *proxyPlan, p *proxy.Proxy, jw *journal.Writer, tamper *proxyTamper, printer *proxyPrinter) serve.HubConfig {
	cfg := serve.HubConfig{
		Registry: p.Clients(), Schema: plan.decoder.Forward, PeerSchema: plan.decoder.Reverse,
		Logger: opts.Factory.Logger, NoDiscovery: true, Bytes: plan.decoder.Bytes,
	}
	if cfg.PeerSchema == nil {
		cfg.PeerSchema = plan.decoder.Forward
	}
	if jw != nil {
		cfg.Journal = journalSink(jw)
	}
	if tamper != nil {
		cfg.Count = tamper.forward.Count
		if tamper.forward.Script().HasOnConnect() {
			cfg.OnConnect = func(ctx context.Context, peer calls.Peer) error {
				err := tamper.forward.OnConnect(ctx, peer)
				if err != nil && printer != nil {
					printer.onConnectFailed(peer, err)
				}
				return err
			}
		}
	}
	return cfg
}
