package main

import (
	"context"
	"fmt"
	"net"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/proxy"
	"github.com/bcctl/bcctl/internal/script"
)

// proxyKeepMessages is how many bytes of each call's messages, each way,
// the proxy keeps for the journal and the printer; beyond it they are
// counted.
const proxyKeepMessages = 4 << 20

// proxyPlan is what proxy's flags resolve to before anything listens.
type proxyPlan struct {
	listen   []Address
	admin    *Address
	upstream Address
	upCreds  credentials.TransportCredentials
	decoder  *proxy.Decoder
	// reflection is the connection reflection on the upstream uses; nil
	// without reflection. The run closes it.
	reflection *grpc.ClientConn
	jsonOut    bool
	textOut    bool
	// script is --script, loaded; nil without one.
	script *script.Script
	cfg    proxy.Config
}

// proxyPlanOf checks the flags and loads the schema files.
func proxyPlanOf(ctx context.Context, opts *ProxyOptions) (*proxyPlan, error) {
	p := &proxyPlan{}
	var err error
	if p.jsonOut, p.textOut, err = outputModes(opts.Output, opts.IO); err != nil {
		return nil, err
	}
	if _, err := opts.Bytes.Mode(); err != nil {
		return nil, err
	}
	if opts.TUI && opts.UI == nil {
		return nil, errNoTUI
	}
	if p.admin, err = adminAddress(ctx, opts.Admin); err != nil {
		return nil, err
	}
	if opts.Upstream == "" {
		return nil, usageErrorf("proxy needs --upstream: the address of the server to relay to")
	}
	if p.upstream, err = ParseAddress(opts.Upstream, false); err != nil {
		return nil, usageErrorf("--upstream: %v", err)
	}
	listen := opts.Listen
	if len(listen) == 0 {
		listen = []string{proxyDefaultListen}
	}
	for _, l := range listen {
		a, err := ParseAddress(l, false)
		if err != nil {
			return nil, usageErrorf("--listen: %v", err)
		}
		p.listen = append(p.listen, a)
	}
	if err := opts.Schema.Validate(); err != nil {
		return nil, err
	}
	if err := opts.PeerSchema.Validate(); err != nil {
		return nil, err
	}
	listenCreds, err := opts.ListenTLS.ServerCredentials()
	if err != nil {
		return nil, err
	}
	if p.upCreds, err = opts.UpstreamTLS.ClientCredentials(); err != nil {
		return nil, err
	}
	if err := p.loadSchemas(ctx, opts); err != nil {
		p.close()
		return nil, err
	}
	if opts.Script != "" {
		if err := p.loadScript(ctx, opts); err != nil {
			p.close()
			return nil, err
		}
	}
	p.cfg = proxy.Config{
		UpstreamNetwork: p.upstream.Network, UpstreamAddress: p.upstream.Addr,
		UpstreamCreds: p.upCreds, UpstreamAuthority: opts.UpstreamTLS.Authority,
		ListenCreds: listenCreds, Logger: opts.Factory.Logger,
		MaxMsgSize: opts.MaxMsgSize, ConnectTimeout: opts.ConnectTimeout,
	}
	if p.textOut || p.jsonOut || opts.Journal != "" || opts.Record != "" || opts.Admin != "" || opts.TUI {
		p.cfg.KeepMessages = proxyKeepMessages
	}
	return p, nil
}

// loadSchemas builds the decoder: the files, and reflection on the
// upstream, asked on first use over a connection of its own.
func (p *proxyPlan) loadSchemas(ctx context.Context, opts *ProxyOptions) error {
	files, err := opts.Schema.FileSource(ctx)
	if err != nil {
		return err
	}
	var forward dynamic.Source
	if files != nil {
		forward = files
	}
	if opts.Schema.Reflection() {
		dialOpts := []grpc.DialOption{grpc.WithTransportCredentials(p.upCreds)}
		if a := opts.UpstreamTLS.Authority; a != "" {
			dialOpts = append(dialOpts, grpc.WithAuthority(a))
		} else if p.upstream.IsUnix() {
			dialOpts = append(dialOpts, grpc.WithAuthority("localhost"))
		}
		network, addr := p.upstream.Network, p.upstream.Addr
		dialOpts = append(dialOpts, grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}))
		cc, err := grpc.NewClient("passthrough:///"+addr, dialOpts...)
		if err != nil {
			return fmt.Errorf("reflection on the upstream: %w", err)
		}
		p.reflection = cc
		forward, err = opts.Schema.Combine(ctx, files, cc, nil)
		if err != nil {
			return err
		}
	}
	p.decoder = &proxy.Decoder{Forward: forward}
	p.decoder.Bytes, _ = opts.Bytes.Mode() // checked by proxyPlanOf
	peers, err := opts.PeerSchema.FileSource(ctx)
	if err != nil {
		return err
	}
	if peers != nil {
		p.decoder.Reverse = peers
	}
	return nil
}

// loadScript loads --script against the schema, as a proxy's script: its
// rules may relay.
func (p *proxyPlan) loadScript(ctx context.Context, opts *ProxyOptions) error {
	if p.decoder.Forward == nil {
		return usageErrorf("--script needs the schema of the calls it matches: give --proto or --protoset, or leave reflection on")
	}
	data, err := os.ReadFile(opts.Script)
	if err != nil {
		return fmt.Errorf("--script: %w", err)
	}
	cfg := script.Config{Upstream: p.decoder.Forward, Relay: true}
	if p.decoder.Reverse != nil {
		cfg.Backchannel = p.decoder.Reverse
	}
	sc, err := script.Parse(ctx, opts.Script, data, cfg)
	if err != nil {
		return fmt.Errorf("--script %s does not load:\n%w", opts.Script, err)
	}
	p.script = sc
	return nil
}

// close releases what the plan holds.
func (p *proxyPlan) close() {
	if p.reflection != nil {
		p.reflection.Close()
	}
}
