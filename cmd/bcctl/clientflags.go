package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

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
	addr    Address
	hasAddr bool
	// tls is the TLS configuration; nil with --plaintext.
	tls       *tls.Config
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
	var err error
	if p.tls, err = c.TLS.ClientTLS(); err != nil {
		return nil, err
	}
	if p.rpcMD, err = c.Headers.RPCMetadata(getenv); err != nil {
		return nil, err
	}
	if p.reflectMD, err = c.Headers.ReflectMetadata(getenv); err != nil {
		return nil, err
	}
	if c.Conn.MaxMsgSize < 0 {
		return nil, usageErrorf("--max-msg-sz %d: want a positive number of bytes", c.Conn.MaxMsgSize)
	}
	if c.Conn.MaxReverseCalls < 1 {
		return nil, usageErrorf("--max-reverse-calls %d: want at least 1", c.Conn.MaxReverseCalls)
	}
	if c.Conn.MaxReverseConns < 1 {
		return nil, usageErrorf("--max-reverse-conns %d: want at least 1", c.Conn.MaxReverseConns)
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
	// Dial is given the TLS configuration itself (not credentials made of
	// it), so that it can tell a server that wants a client certificate.
	var creds credentials.TransportCredentials
	if p.tls == nil {
		creds = insecure.NewCredentials()
	}
	return host.Config{
		Network:        p.addr.Network,
		Address:        p.addr.Addr,
		Creds:          creds,
		TLS:            p.tls,
		Authority:      c.TLS.Authority,
		NoMux:          c.Conn.NoMux,
		ConnectTimeout: c.Conn.ConnectTimeout,
		KeepaliveTime:  c.Conn.KeepaliveTime,
		MaxRecvMsgSize: c.Conn.MaxMsgSize,
		Limits:         host.Limits{MaxReverseCalls: c.Conn.MaxReverseCalls, MaxReverseConns: c.Conn.MaxReverseConns},
		UserAgent:      c.Conn.UserAgent,
		Backchannel:    backchannel.Configuration{MaximumStreamWindowSizeBytes: c.Conn.MuxWindow},
		Logger:         f.Logger,
	}
}

// explainSchemaError adds what the user can do about a schema that could
// not be found. The error keeps err's identity.
func explainSchemaError(err error) error {
	if errors.Is(err, dynamic.ErrReflectionNotSupported) {
		return &shownError{msg: trimPkg(err) + "\n(give the schema with --proto or --protoset instead)", err: err}
	}
	return &shownError{msg: trimPkg(err), err: err}
}

// shownError is err with the message the user is shown; errors.Is and As
// still see err.
type shownError struct {
	msg string
	err error
}

func (e *shownError) Error() string { return e.msg }
func (e *shownError) Unwrap() error { return e.err }

// maxTimeError is the cause of a command's context ending when --max-time
// passes. Wherever it passes (connecting, resolving the schema, during the
// call) the command exits as a call that ran out of time does.
type maxTimeError struct{ d time.Duration }

func (e *maxTimeError) Error() string { return fmt.Sprintf("--max-time %s passed", e.d) }

// withMaxTime returns ctx bounded by --max-time, when given; its cause is
// then a *maxTimeError.
func (c *ClientFlags) withMaxTime(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.Conn.MaxTime > 0 {
		return context.WithTimeoutCause(ctx, c.Conn.MaxTime, &maxTimeError{d: c.Conn.MaxTime})
	}
	return context.WithCancel(ctx)
}

// maxTimePassed returns err as the --max-time deadline when that is why it
// failed: ctx ended because --max-time passed, or err is a deadline (a
// context error, or a DEADLINE_EXCEEDED status, which the server may send
// a moment before ctx's own timer fires) and --max-time is the only
// deadline there is. None of these carries the cause. A call's own status
// is left as it is.
func (c *ClientFlags) maxTimePassed(ctx context.Context, err error, while string) error {
	var mt *maxTimeError
	var st *StatusError
	if err == nil || c.Conn.MaxTime <= 0 || errors.As(err, &mt) || errors.As(err, &st) {
		return err
	}
	deadline := errors.Is(err, context.DeadlineExceeded) || status.Code(err) == codes.DeadlineExceeded
	if !deadline && !errors.As(context.Cause(ctx), &mt) {
		return err
	}
	return fmt.Errorf("%w while %s", &maxTimeError{d: c.Conn.MaxTime}, while)
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
