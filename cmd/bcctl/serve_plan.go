package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"google.golang.org/grpc"

	"github.com/bcctl/bcctl/internal/admin"
	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/script"
	"github.com/bcctl/bcctl/internal/serve"
)

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

// outputModes reads --output of a long-running command (serve, proxy):
// JSON lines, text for people, or neither. "auto" is text on a terminal
// and JSON lines otherwise.
func outputModes(output string, io *IOStreams) (jsonOut, textOut bool, err error) {
	switch output {
	case "auto":
		return !io.IsStdoutTTY(), io.IsStdoutTTY(), nil
	case "text":
		return false, true, nil
	case "json":
		return true, false, nil
	case "none":
		return false, false, nil
	}
	return false, false, usageErrorf("--output %q: want auto, text, json or none", output)
}

// adminAddress reads --admin (of serve and proxy): nil when it is not
// given, a usage error when it is not a loopback address or a unix socket.
func adminAddress(ctx context.Context, flag string) (*Address, error) {
	if flag == "" {
		return nil, nil
	}
	a, err := ParseAddress(flag, false)
	if err != nil {
		return nil, usageErrorf("--admin: %v", err)
	}
	if err := admin.CheckAddress(ctx, a.String()); err != nil {
		if errors.Is(err, admin.ErrNotLocal) {
			return nil, usageErrorf("--admin: %v (the admin API triggers calls into peers, so it is never exposed beyond this machine)", err)
		}
		return nil, usageErrorf("--admin: %v", err)
	}
	return &a, nil
}

// servePlanOf checks the flags and loads the schema and the script.
func servePlanOf(ctx context.Context, opts *ServeOptions) (*servePlan, error) {
	p := &servePlan{}
	var err error
	if p.jsonOut, p.textOut, err = outputModes(opts.Output, opts.IO); err != nil {
		return nil, err
	}
	bytes, err := opts.Bytes.Mode()
	if err != nil {
		return nil, err
	}
	if opts.TUI && opts.UI == nil {
		return nil, errNoTUI
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
	if p.admin, err = adminAddress(ctx, opts.Admin); err != nil {
		return nil, err
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
		MuxWindow: opts.MuxWindow, Bytes: bytes,
	}
	return p, nil
}
