package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/host"
	"github.com/bcctl/bcctl/internal/journal"
	"github.com/bcctl/bcctl/internal/script"
)

// session is one client connection with everything around it: the forward
// schema, the hosted backchannel with its script engine, and the journal
// through which every call is reported (to the --journal file, to the
// printed output, to the JSON document).
type session struct {
	f       *Factory
	plan    *clientPlan
	conn    *host.Conn // nil when no address was given
	forward dynamic.Source
	// forwardFiles are the forward schema's files; nil without any.
	forwardFiles *dynamic.FileSource
	hosted       dynamic.Source
	engine       *script.Engine
	hasAnswer    bool
	journal      *journal.Writer
	closers      []func() error
}

// sessionOptions say what a command needs of its session.
type sessionOptions struct {
	Client *ClientFlags
	// Answer is nil for commands that host nothing (list, describe).
	Answer *AnswerFlags
	// Responder builds the Responder of reverse calls; nil means the
	// script engine.
	Responder ResponderFactory
	// Stop ends the command (for an interactive Responder).
	Stop func()
	// Tap receives every journal entry, in order (printing, the JSON
	// document).
	Tap func(journal.Entry)
	// LazyForward leaves the forward schema unresolved unless something
	// needs it (a script, or a hosted schema taken from it).
	LazyForward bool
}

// openSession dials (when there is an address), resolves the schemas,
// loads the script and hosts the backchannel. Close it when done.
func openSession(ctx context.Context, f *Factory, plan *clientPlan, o sessionOptions) (_ *session, err error) {
	s := &session{f: f, plan: plan}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()

	// The journal numbers every call; the file is optional.
	jopts := journal.Options{Tap: o.Tap}
	if o.Answer != nil && o.Answer.Journal != "" {
		s.journal, err = journal.Create(o.Answer.Journal, jopts)
		if err != nil {
			return nil, fmt.Errorf("--journal: %w", err)
		}
		s.closers = append(s.closers, s.journal.Close)
	} else {
		s.journal = journal.NewWriter(io.Discard, jopts)
	}

	if plan.hasAddr {
		s.conn, err = host.Dial(ctx, o.Client.hostConfig(plan, f))
		if err != nil {
			return nil, explainDialError(err)
		}
		s.closers = append(s.closers, s.conn.Close)
	}

	needForward := !o.LazyForward || (o.Answer != nil && (o.Answer.Answer != "" || !o.Answer.Schema.HasFiles() && o.Client.Schema.HasFiles()))
	if needForward {
		if err := s.resolveForward(ctx, o.Client); err != nil {
			return nil, err
		}
	}
	if o.Answer == nil || s.conn == nil || !s.conn.Multiplexed() {
		if s.conn != nil && s.conn.Multiplexed() {
			// list/describe: nothing is hosted, but the upstream may still
			// call; tell it so.
			err := s.conn.Host(host.Backchannel{Responder: dynamic.ResponderFunc(func(call dynamic.Call) error {
				return status.Error(codes.Unimplemented, "bcctl hosts nothing on this connection")
			})})
			if err != nil {
				return nil, err
			}
		}
		return s, nil
	}
	if err := s.hostBackchannel(ctx, o); err != nil {
		return nil, err
	}
	return s, nil
}

// resolveForward builds the forward schema from the flags.
func (s *session) resolveForward(ctx context.Context, c *ClientFlags) error {
	if s.forward != nil {
		return nil
	}
	if s.conn == nil && c.Schema.Reflection() {
		return usageErrorf("reflection needs the server's address")
	}
	files, err := c.Schema.FileSource(ctx)
	if err != nil {
		return err
	}
	var cc grpc.ClientConnInterface
	if s.conn != nil {
		cc = s.conn.ClientConn()
	}
	src, err := c.Schema.Combine(ctx, files, cc, s.plan.reflectMD)
	if err != nil {
		return err
	}
	s.forward, s.forwardFiles = src, files
	s.closers = append(s.closers, src.Close)
	return nil
}

// hostBackchannel loads the script and serves the hosted services on the
// backchannel.
func (s *session) hostBackchannel(ctx context.Context, o sessionOptions) error {
	a := o.Answer
	// The hosted schema: its own files, else the forward files, else the
	// forward schema by reflection (then only the services the script
	// answers are hosted).
	var hostedFiles *dynamic.FileSource
	switch {
	case a.Schema.HasFiles():
		fs, err := a.Schema.FileSource(ctx)
		if err != nil {
			return err
		}
		hostedFiles = fs
	case o.Client.Schema.HasFiles():
		if err := s.resolveForward(ctx, o.Client); err != nil {
			return err
		}
		hostedFiles = s.forwardFiles
	}
	if hostedFiles != nil {
		s.hosted = hostedFiles
	} else {
		s.hosted = s.forward
	}

	// The script, checked against both schemas.
	var sc *script.Script
	if a.Answer != "" {
		if s.forward == nil {
			if err := s.resolveForward(ctx, o.Client); err != nil {
				return err
			}
			if s.hosted == nil {
				s.hosted = s.forward
			}
		}
		var err error
		sc, err = script.LoadFile(ctx, a.Answer, script.Config{Upstream: s.forward, Backchannel: s.hosted})
		if err != nil {
			return fmt.Errorf("--answer: %w", explainScriptSchemaError(err))
		}
		s.hasAnswer = true
	} else {
		var schema script.Schema = emptySchema{}
		if s.hosted != nil {
			schema = s.hosted
		}
		var err error
		sc, err = script.Parse(ctx, "(no --answer script)", nil, script.Config{Upstream: schema, Backchannel: schema})
		if err != nil {
			return err
		}
	}
	s.engine = script.NewEngine(sc, script.Downstream, script.Options{
		Caller:   script.CallerFunc(s.upstreamTarget),
		Observer: s.journal,
		Logger:   s.f.Logger,
		Env:      s.f.Getenv,
	})

	var services []protoreflect.ServiceDescriptor
	var files []protoreflect.FileDescriptor
	if hostedFiles != nil {
		var err error
		if services, err = dynamic.Services(ctx, hostedFiles); err != nil {
			return err
		}
		files = hostedFiles.Files()
	} else if sc != nil && s.hosted != nil {
		var err error
		if services, err = scriptServices(ctx, sc, s.hosted); err != nil {
			return err
		}
	}

	responder := dynamic.Responder(s.engine)
	factory := o.Responder
	if factory != nil {
		r, err := factory(ResponderEnv{
			Context: ctx, Engine: s.engine, Report: s.report,
			Hosted: s.hosted, Forward: s.forward, Conn: s.conn, IO: s.f.IOStreams, Stop: o.Stop,
			Headers: s.plan.rpcMD,
		})
		if err != nil {
			return err
		}
		if c, ok := r.(io.Closer); ok { // the TUI: closing it restores the terminal
			s.closers = append(s.closers, c.Close)
		}
		responder = r
	}
	return s.conn.Host(host.Backchannel{
		Services:  services,
		Files:     files,
		Responder: responder,
		Unhosted:  s.unhosted(services),
		Observer: calls.ObserverFunc(func(ev *calls.Event) {
			s.report(ev, journal.ByCLI)
		}),
	})
}

// report journals a call that the engine did not handle and counts it for
// the expectations.
func (s *session) report(ev *calls.Event, by string) {
	_, _ = s.journal.WriteEvent(ev, by)
	if s.engine != nil {
		s.engine.Count(ev.Record())
	}
}

// unhosted explains a reverse call to a method bcctl does not host.
func (s *session) unhosted(services []protoreflect.ServiceDescriptor) func(string) *status.Status {
	return func(method string) *status.Status {
		var names []string
		for _, sd := range services {
			names = append(names, string(sd.FullName()))
		}
		msg := fmt.Sprintf("bcctl does not host %s on its backchannel", method)
		switch {
		case len(names) > 0:
			msg += fmt.Sprintf(" (it hosts %s)", strings.Join(names, ", "))
		case !s.hasAnswer:
			msg += " (start bcctl with --answer SCRIPT, and the schema of the hosted services with --backchannel-proto or --backchannel-protoset)"
		default:
			msg += " (the --answer script has no backchannel rule for it)"
		}
		return status.New(codes.Unimplemented, msg)
	}
}

// upstreamTarget is the Caller of the engine's `call` steps: a backchannel
// rule calls the upstream, over the forward connection.
func (s *session) upstreamTarget(_ context.Context, _ calls.Peer, to string) ([]script.Target, error) {
	if to != "" && to != "caller" {
		return nil, status.Errorf(codes.InvalidArgument, "a backchannel rule can only call the upstream, not %q", to)
	}
	return []script.Target{{Peer: calls.Peer{Addr: s.plan.addr.String()}, Conn: s.conn.ClientConn()}}, nil
}

// Check checks the script's expectations; nil without --answer.
func (s *session) Check() *script.Report {
	if s.engine == nil || !s.hasAnswer {
		return nil
	}
	return s.engine.Check()
}

// Close closes everything the session opened, in reverse order.
func (s *session) Close() error {
	var errs []error
	for i := len(s.closers) - 1; i >= 0; i-- {
		if err := s.closers[i](); err != nil {
			errs = append(errs, err)
		}
	}
	s.closers = nil
	return errors.Join(errs...)
}

// scriptServices returns the services whose methods the script's
// backchannel rules answer, resolved in schema (used when the hosted schema
// comes from reflection, which lists only the upstream's own services).
func scriptServices(ctx context.Context, sc *script.Script, schema dynamic.Source) ([]protoreflect.ServiceDescriptor, error) {
	seen := map[string]bool{}
	var out []protoreflect.ServiceDescriptor
	add := func(name string) error {
		if seen[name] {
			return nil
		}
		seen[name] = true
		d, err := schema.FindSymbol(ctx, name)
		if err != nil {
			return fmt.Errorf("hosted service %s: %w", name, err)
		}
		if sd, ok := d.(protoreflect.ServiceDescriptor); ok {
			out = append(out, sd)
		}
		return nil
	}
	var listed []protoreflect.FullName
	for _, r := range sc.Backchannel {
		m := strings.TrimPrefix(r.Method, "/")
		svc, _, ok := strings.Cut(m, "/")
		if !ok {
			if i := strings.LastIndexByte(m, '.'); i > 0 {
				svc = m[:i]
			}
		}
		if !strings.ContainsAny(svc, "*?[\\") {
			if err := add(svc); err != nil {
				return nil, err
			}
			continue
		}
		if listed == nil {
			var err error
			if listed, err = schema.ListServices(ctx); err != nil {
				return nil, err
			}
		}
		for _, name := range listed {
			if ok, _ := path.Match(svc, string(name)); ok {
				if err := add(string(name)); err != nil {
					return nil, err
				}
			}
		}
	}
	return out, nil
}

// explainScriptSchemaError keeps script errors as they are (they name file,
// line and column).
func explainScriptSchemaError(err error) error {
	if errors.Is(err, dynamic.ErrReflectionNotSupported) {
		return fmt.Errorf("%w\n(the script is checked against the server's schema: give it with --proto or --protoset)", err)
	}
	return err
}

// emptySchema is the schema of a session that knows no services.
type emptySchema struct{}

func (emptySchema) ListServices(context.Context) ([]protoreflect.FullName, error) { return nil, nil }
func (emptySchema) FindSymbol(_ context.Context, name string) (protoreflect.Descriptor, error) {
	return nil, fmt.Errorf("%s: %w", name, dynamic.ErrNotFound)
}
func (emptySchema) Types() dynamic.TypeResolver { return globalTypes() }
