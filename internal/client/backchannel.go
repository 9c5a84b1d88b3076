package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/host"
	"github.com/bcctl/bcctl/internal/journal"
	"github.com/bcctl/bcctl/internal/script"
)

// Backchannel is what a session hosts on its backchannel.
type Backchannel struct {
	// Script is the file whose backchannel rules answer reverse calls and
	// whose expect entries Check evaluates; "" answers with an empty
	// script (every reverse call gets UNIMPLEMENTED).
	Script string
	// Files loads the schema of the hosted services; nil means the forward
	// schema's files, or, without any, the forward schema itself (then
	// only the services the script answers are hosted).
	Files func(ctx context.Context) (*dynamic.FileSource, error)
	// Responder builds the Responder of reverse calls; nil means the
	// script engine.
	Responder ResponderFactory
	// Stop ends the command (a person quitting an interactive Responder).
	Stop func()
	// Headers are the request metadata of forward calls, for a Responder
	// that makes forward calls of its own.
	Headers metadata.MD
}

// ResponderEnv is what a ResponderFactory gets to build the Responder that
// answers reverse calls.
type ResponderEnv struct {
	// Context ends with the session's command.
	Context context.Context
	// Engine runs the script (an empty script without Backchannel.Script):
	// its Match and RespondReceived let a script rule answer a call that a
	// person was shown first.
	Engine *script.Engine
	// Report must be told of every call the Responder answers without the
	// Engine (by is journal.ByTUI, say): it goes to the journal, to the
	// tap, and is counted for the script's expectations.
	Report func(ev *calls.Event, by string)
	// Hosted is the schema of the hosted services (response templates);
	// Forward the server's schema (nil while unresolved) and Conn the
	// connection (forward calls made by hand).
	Hosted  dynamic.Source
	Forward dynamic.Source
	Conn    *host.Conn
	// Stop ends the command (a person quit).
	Stop func()
	// Headers are the request metadata of forward calls.
	Headers metadata.MD
	// Bytes says how bytes fields are shown (Config.Bytes).
	Bytes dynamic.BytesMode
}

// ResponderFactory builds the Responder that answers reverse calls. A
// Responder that is also an io.Closer (the TUI's) is closed with the
// session, before the connection: its Close must not return before the
// terminal is restored.
type ResponderFactory func(env ResponderEnv) (dynamic.Responder, error)

// hostBackchannel loads the script and serves the hosted services on the
// backchannel.
func (s *Session) hostBackchannel(ctx context.Context, bc *Backchannel) error {
	// The hosted schema: its own files, else the forward files, else the
	// forward schema by reflection (then only the services the script
	// answers are hosted).
	var hostedFiles *dynamic.FileSource
	switch {
	case bc.Files != nil:
		fs, err := bc.Files(ctx)
		if err != nil {
			return err
		}
		hostedFiles = fs
	case s.cfg.Schema.Files != nil:
		if err := s.resolveForward(ctx); err != nil {
			return err
		}
		hostedFiles = s.forwardFiles
	}
	if hostedFiles != nil {
		s.hosted = hostedFiles
	} else {
		s.hosted = s.forward
	}

	sc, err := s.loadScript(ctx, bc)
	if err != nil {
		return err
	}
	s.engine = script.NewEngine(sc, script.Downstream, script.Options{
		Caller:   script.CallerFunc(s.upstreamTarget),
		Observer: s.journal,
		Logger:   s.cfg.Logger,
		Env:      s.cfg.Env,
	})

	var services []protoreflect.ServiceDescriptor
	var files []protoreflect.FileDescriptor
	if hostedFiles != nil {
		if services, err = dynamic.Services(ctx, hostedFiles); err != nil {
			return err
		}
		files = hostedFiles.Files()
	} else if s.hosted != nil {
		if services, err = scriptServices(ctx, sc, s.hosted); err != nil {
			return err
		}
	}

	responder := dynamic.Responder(s.engine)
	if bc.Responder != nil {
		r, err := bc.Responder(ResponderEnv{
			Context: ctx, Engine: s.engine, Report: s.Report,
			Hosted: s.hosted, Forward: s.forward, Conn: s.conn, Stop: bc.Stop,
			Headers: bc.Headers, Bytes: s.cfg.Bytes,
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
			s.Report(ev, journal.ByCLI)
		}),
	})
}

// loadScript loads Backchannel.Script, checked against the forward and the
// hosted schemas, or makes the empty script.
func (s *Session) loadScript(ctx context.Context, bc *Backchannel) (*script.Script, error) {
	if bc.Script == "" {
		var schema script.Schema = emptySchema{}
		if s.hosted != nil {
			schema = s.hosted
		}
		return script.Parse(ctx, "(no --answer script)", nil, script.Config{Upstream: schema, Backchannel: schema})
	}
	if s.forward == nil {
		if err := s.resolveForward(ctx); err != nil {
			return nil, err
		}
		if s.hosted == nil {
			s.hosted = s.forward
		}
	}
	sc, err := script.LoadFile(ctx, bc.Script, script.Config{Upstream: s.forward, Backchannel: s.hosted})
	if err != nil {
		return nil, fmt.Errorf("--answer: %w", explainScriptSchemaError(err))
	}
	s.hasScript = true
	return sc, nil
}

// unhosted explains a reverse call to a method bcctl does not host.
func (s *Session) unhosted(services []protoreflect.ServiceDescriptor) func(string) *status.Status {
	return func(method string) *status.Status {
		var names []string
		for _, sd := range services {
			names = append(names, string(sd.FullName()))
		}
		msg := fmt.Sprintf("bcctl does not host %s on its backchannel", method)
		switch {
		case len(names) > 0:
			msg += fmt.Sprintf(" (it hosts %s)", strings.Join(names, ", "))
		case !s.hasScript:
			msg += " (start bcctl with --answer SCRIPT, and the schema of the hosted services with --backchannel-proto or --backchannel-protoset)"
		default:
			msg += " (the --answer script has no backchannel rule for it)"
		}
		return status.New(codes.Unimplemented, msg)
	}
}

// upstreamTarget is the Caller of the engine's `call` steps: a backchannel
// rule calls the upstream, over the forward connection.
func (s *Session) upstreamTarget(_ context.Context, _ calls.Peer, to string) ([]script.Target, error) {
	if to != "" && to != "caller" {
		return nil, status.Errorf(codes.InvalidArgument, "a backchannel rule can only call the upstream, not %q", to)
	}
	return []script.Target{{Peer: calls.Peer{Addr: s.cfg.Target}, Conn: s.conn.ClientConn()}}, nil
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
func (emptySchema) Types() dynamic.TypeResolver { return protoregistry.GlobalTypes }
