package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/pflag"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/internal/client"
	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/host"
)

// ClientFlags are the flags of every command that connects to a server:
// transport security, connection, headers and schema.
type ClientFlags struct {
	TLS     TLSFlags
	Conn    ConnFlags
	Headers HeaderFlags
	Schema  SchemaFlags
}

// AddFlags adds every client flag to fs.
func (c *ClientFlags) AddFlags(fs *pflag.FlagSet) {
	c.TLS.AddClientFlags(fs)
	c.Conn.AddFlags(fs)
	c.Headers.AddFlags(fs)
	c.Schema.AddFlags(fs)
}

// clientPlan is what the client flags resolve to before anything is
// dialed: every usage error is found here.
type clientPlan struct {
	addr      Address
	hasAddr   bool
	creds     credentials.TransportCredentials
	rpcMD     metadata.MD
	reflectMD metadata.MD
}

// plan checks the flags and the address argument ("" when none was given).
func (c *ClientFlags) plan(addrArg string, getenv func(string) string) (*clientPlan, error) {
	p := &clientPlan{}
	if addrArg != "" {
		addr, err := ParseAddress(addrArg, c.Conn.Unix)
		if err != nil {
			return nil, &usageError{err: err}
		}
		p.addr, p.hasAddr = addr, true
	}
	if err := c.Schema.Validate(); err != nil {
		return nil, err
	}
	if !p.hasAddr && c.Schema.Reflection() {
		return nil, usageErrorf("the server address is missing (it may be left out only with --proto or --protoset)")
	}
	creds, err := c.TLS.ClientCredentials()
	if err != nil {
		return nil, err
	}
	p.creds = creds
	if p.rpcMD, err = c.Headers.RPCMetadata(getenv); err != nil {
		return nil, err
	}
	if p.reflectMD, err = c.Headers.ReflectMetadata(getenv); err != nil {
		return nil, err
	}
	if c.Conn.MaxMsgSize < 0 {
		return nil, usageErrorf("--max-msg-sz %d: want a positive number of bytes", c.Conn.MaxMsgSize)
	}
	return p, nil
}

// sessionConfig is the client session of the plan: the connection (when
// there is an address) and the forward schema. Commands add the
// backchannel, the journal and the tap.
func (c *ClientFlags) sessionConfig(p *clientPlan, f *Factory) client.Config {
	cfg := client.Config{
		Target: p.addr.String(),
		Schema: client.Schema{Files: c.Schema.files(), Reflection: c.Schema.Reflection(), ReflectMetadata: p.reflectMD},
		Logger: f.Logger,
		Env:    f.Getenv,
	}
	if p.hasAddr {
		dial := c.hostConfig(p, f)
		cfg.Dial = &dial
	}
	return cfg
}

// hostConfig returns the dial configuration of the plan.
func (c *ClientFlags) hostConfig(p *clientPlan, f *Factory) host.Config {
	return host.Config{
		Network:        p.addr.Network,
		Address:        p.addr.Addr,
		Creds:          p.creds,
		Authority:      c.TLS.Authority,
		NoMux:          c.Conn.NoMux,
		ConnectTimeout: c.Conn.ConnectTimeout,
		KeepaliveTime:  c.Conn.KeepaliveTime,
		MaxRecvMsgSize: c.Conn.MaxMsgSize,
		UserAgent:      c.Conn.UserAgent,
		Backchannel:    backchannel.Configuration{MaximumStreamWindowSizeBytes: c.Conn.MuxWindow},
		Logger:         f.Logger,
	}
}

// explainSchemaError adds what the user can do about a schema that could
// not be found.
func explainSchemaError(err error) error {
	if errors.Is(err, dynamic.ErrReflectionNotSupported) {
		return fmt.Errorf("%s\n(give the schema with --proto or --protoset instead)", trimPkg(err))
	}
	return errors.New(trimPkg(err))
}

// withMaxTime returns ctx bounded by --max-time, when given.
func (c *ClientFlags) withMaxTime(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.Conn.MaxTime > 0 {
		return context.WithTimeoutCause(ctx, c.Conn.MaxTime, fmt.Errorf("--max-time %s passed", c.Conn.MaxTime))
	}
	return context.WithCancel(ctx)
}

// looksLikeAddress tells an address argument from a symbol when the
// address is optional (list and describe with --proto/--protoset): a
// symbol never has a port.
func looksLikeAddress(s string, unix bool) bool {
	if unix || strings.HasPrefix(s, "unix:") {
		return true
	}
	_, err := ParseAddress(s, false)
	return err == nil
}
