package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

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
	if plan.textOut || plan.jsonOut {
		w.printer = &proxyPrinter{w: opts.IO.SyncOut(), json: plan.jsonOut, verbosity: opts.Verbosity, cs: opts.IO.ColorScheme()}
	}
	if opts.Journal != "" {
		w.journal, err = journal.Create(opts.Journal, journal.Options{})
		if err != nil {
			return fmt.Errorf("--journal: %w", err)
		}
		defer w.journal.Close()
	}
	if opts.Record != "" {
		w.record = &proxyRecorder{path: opts.Record, decoder: plan.decoder}
	}
	if plan.script != nil {
		w.tamper = newProxyTamper(plan.script, plan.decoder, script.Options{Logger: opts.Factory.Logger, Env: opts.Factory.Getenv})
		plan.cfg.Tamper = w.tamper
	}
	plan.cfg.Observer = w
	p, err := proxy.New(plan.cfg)
	if err != nil {
		return err
	}
	rc := serve.RunConfig{
		Service: p,
		MaxTime: opts.MaxTime,
		Grace:   opts.Grace,
		Serving: func(l serve.Listening) { proxyAnnounce(opts, plan, l, stderr) },
	}
	for _, a := range plan.listen {
		rc.Listen = append(rc.Listen, a.Listen)
	}
	stopped, err := serve.Run(ctx, rc)
	if err != nil {
		return err
	}

	fmt.Fprintf(stderr, "bcctl proxy: stopped (%s) after %s: %s\n",
		proxyStopText(stopped, opts), time.Since(w.started).Round(time.Millisecond), w.summary())
	if stopped.ShutdownErr != nil {
		fmt.Fprintf(stderr, "bcctl proxy: %v\n", stopped.ShutdownErr)
	}
	var errs []error
	if stopped.Err != nil {
		errs = append(errs, stopped.Err)
	}
	if w.journal != nil {
		if err := w.journal.Close(); err != nil {
			errs = append(errs, fmt.Errorf("--journal %s lost entries: %w", opts.Journal, err))
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
	report := w.tamper.forward.Check()
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

// proxyStopText says why the proxy stopped, for the last line it prints.
func proxyStopText(st *serve.Stopped, opts *ProxyOptions) string {
	switch st.Reason {
	case serve.StopMaxTime:
		return fmt.Sprintf("--max-time %s passed", opts.MaxTime)
	case serve.StopListenerFailed:
		return "a listener failed"
	}
	return st.Detail
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
	_, _ = io.WriteString(stderr, b.String())
	if opts.AddrFile != "" {
		if err := serveWriteAddrFile(opts.AddrFile, l); err != nil {
			fmt.Fprintf(stderr, "bcctl proxy: --addr-file: %v\n", err)
		}
	}
}
