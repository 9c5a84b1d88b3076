package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/host"
	"github.com/bcctl/bcctl/internal/journal"
	"github.com/bcctl/bcctl/internal/script"
	"github.com/bcctl/bcctl/sidechannel"
)

// Config configures Open.
type Config struct {
	// Dial connects to the server; nil means no connection (list and
	// describe from files).
	Dial *host.Config
	// Target is the server's address as the user wrote it (host:port,
	// unix:PATH): the peer in the journal entries of forward calls and of
	// the calls the script makes upstream.
	Target string
	// Schema is where the forward schema comes from.
	Schema Schema
	// LazyForward leaves the forward schema unresolved unless something
	// needs it: a script, or a hosted schema taken from it (connect).
	LazyForward bool
	// Backchannel is what the session hosts on the backchannel; nil hosts
	// nothing (list, describe), and reverse calls get UNIMPLEMENTED.
	Backchannel *Backchannel
	// Journal is the journal file to write; "" writes none (calls are
	// numbered and tapped all the same).
	Journal string
	// Tap receives every journal entry, in order.
	Tap func(journal.Entry)
	// Bytes says how the journal's entries (and so the tap) and the TUI
	// show bytes fields: "" is base64, as protobuf JSON writes them;
	// dynamic.BytesText shows UTF-8 bytes as text (--bytes text).
	Bytes dynamic.BytesMode
	// Logger receives the libraries' diagnostics; nil discards.
	Logger *slog.Logger
	// Env looks up ${env.NAME} in the script; nil means os.Getenv.
	Env func(string) string
}

// Schema says where the forward schema comes from.
type Schema struct {
	// Files loads the .proto and protoset files; nil when none are given.
	// It is called at most once, when the schema is needed.
	Files func(ctx context.Context) (*dynamic.FileSource, error)
	// Reflection asks the server by reflection, with the files (if any)
	// as the fallback for what it does not know.
	Reflection bool
	// ReflectMetadata is sent with reflection requests.
	ReflectMetadata metadata.MD
}

// Errors of a configuration that cannot give a forward schema (the command
// line rejects such flags before it opens a session).
var (
	ErrNoAddress = errors.New("client: reflection needs the server's address")
	ErrNoSchema  = errors.New("client: no schema: no files, and reflection is off")
)

// Session is one client connection with everything around it. Open it,
// Close it when done.
type Session struct {
	cfg     Config
	conn    *host.Conn // nil without Config.Dial
	forward dynamic.Source
	// forwardFiles are the forward schema's files; nil without any.
	forwardFiles *dynamic.FileSource
	hosted       dynamic.Source
	engine       *script.Engine
	hasScript    bool
	journal      *journal.Writer
	closers      []func() error
	// sidechannels routes the sidechannels the server opens; nil without a
	// multiplexed connection.
	sidechannels *sidechannelRouter
}

// Open dials (with Config.Dial), resolves the forward schema (unless
// LazyForward and nothing needs it), loads the script and hosts the
// backchannel. On error, what was opened is closed.
func Open(ctx context.Context, cfg Config) (_ *Session, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Session{cfg: cfg}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()

	// The journal numbers every call; the file is optional.
	jopts := journal.Options{Tap: cfg.Tap, Bytes: cfg.Bytes}
	if cfg.Journal != "" {
		s.journal, err = journal.Create(cfg.Journal, jopts)
		if err != nil {
			return nil, fmt.Errorf("--journal: %w", err)
		}
		s.closers = append(s.closers, s.journal.Close)
	} else {
		s.journal = journal.NewWriter(io.Discard, jopts)
	}

	if cfg.Dial != nil {
		dial := *cfg.Dial
		if !dial.NoMux {
			// Every multiplexed connection takes its sidechannels, as
			// Gitaly's clients do (with their 1 s stream close timeout).
			s.sidechannels = newSidechannelRouter()
			dial.StreamHandshakers = append(dial.StreamHandshakers[:len(dial.StreamHandshakers):len(dial.StreamHandshakers)], s.sidechannels)
			if dial.Backchannel.StreamCloseTimeout == 0 {
				dial.Backchannel.StreamCloseTimeout = sidechannel.ClientConfiguration().StreamCloseTimeout
			}
		}
		s.conn, err = host.Dial(ctx, dial)
		if err != nil {
			return nil, explainDialError(err)
		}
		s.closers = append(s.closers, s.conn.Close)
	}

	bc := cfg.Backchannel
	needForward := !cfg.LazyForward || (bc != nil && (bc.Script != "" || bc.Files == nil && cfg.Schema.Files != nil))
	if needForward {
		if err := s.resolveForward(ctx); err != nil {
			return nil, err
		}
	}
	if bc == nil || s.conn == nil || !s.conn.Multiplexed() {
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
	if err := s.hostBackchannel(ctx, bc); err != nil {
		return nil, err
	}
	return s, nil
}

// resolveForward builds the forward schema: reflection and/or the files.
func (s *Session) resolveForward(ctx context.Context) error {
	if s.forward != nil {
		return nil
	}
	sc := s.cfg.Schema
	if s.conn == nil && sc.Reflection {
		return ErrNoAddress
	}
	var files *dynamic.FileSource
	if sc.Files != nil {
		var err error
		if files, err = sc.Files(ctx); err != nil {
			return err
		}
	}
	var cc grpc.ClientConnInterface
	if s.conn != nil {
		cc = s.conn.ClientConn()
	}
	src, err := ForwardSource(ctx, files, sc.Reflection, cc, sc.ReflectMetadata)
	if err != nil {
		return err
	}
	s.forward, s.forwardFiles = src, files
	s.closers = append(s.closers, src.Close)
	return nil
}

// ForwardSource is a forward schema: by reflection over cc (md is sent
// with its requests) with files, when given, as the fallback for what
// reflection does not know; or, without reflection, the files alone.
func ForwardSource(ctx context.Context, files *dynamic.FileSource, reflection bool, cc grpc.ClientConnInterface, md metadata.MD) (dynamic.Source, error) {
	switch {
	case !reflection && files == nil:
		return nil, ErrNoSchema
	case !reflection:
		return files, nil
	case cc == nil:
		return nil, ErrNoAddress
	}
	refl := dynamic.NewSourceFromReflection(ctx, cc, md)
	if files == nil {
		return refl, nil
	}
	return dynamic.NewCompositeSource(refl, files), nil
}

// Conn is the connection; nil without Config.Dial.
func (s *Session) Conn() *host.Conn { return s.conn }

// Forward is the forward schema; nil while LazyForward left it
// unresolved.
func (s *Session) Forward() dynamic.Source { return s.forward }

// Hosted is the schema of the services hosted on the backchannel; nil
// when nothing is hosted or no schema was found for it.
func (s *Session) Hosted() dynamic.Source { return s.hosted }

// Report journals a call that the script engine did not handle (a person
// answered it, say; by is journal.ByTUI) and counts it for the
// expectations.
func (s *Session) Report(ev *calls.Event, by string) {
	_, _ = s.journal.WriteEvent(ev, by)
	if s.engine != nil {
		s.engine.Count(ev.Record())
	}
}

// Check evaluates the script's expectations; nil without
// Backchannel.Script.
func (s *Session) Check() *script.Report {
	if s.engine == nil || !s.hasScript {
		return nil
	}
	return s.engine.Check()
}

// Close closes everything the session opened, in reverse order: the
// Responder (a TUI restores the terminal), the schema, the connection, the
// journal file. Its error says what failed, a journal that lost entries
// included. It may be called more than once.
func (s *Session) Close() error {
	var errs []error
	for i := len(s.closers) - 1; i >= 0; i-- {
		if err := s.closers[i](); err != nil {
			errs = append(errs, err)
		}
	}
	s.closers = nil
	return errors.Join(errs...)
}

// explainDialError adds what the user can do about a connection error.
func explainDialError(err error) error {
	if errors.Is(err, host.ErrNotMultiplexing) {
		return fmt.Errorf("%w\n(to call a server that does not speak the backchannel protocol, add --no-mux)", err)
	}
	return err
}
