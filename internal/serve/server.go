package serve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/script"
	"github.com/bcctl/bcctl/listenmux"
)

// maxConcurrentStreams bounds the calls in flight on one connection (grpc-go
// has no limit by default).
const maxConcurrentStreams = 1024

// Server is a running mock upstream. Create it with New, serve listeners
// with Serve, and end it with Shutdown.
type Server struct {
	// Hub is serve's live registry and journal: Peers, WatchPeers,
	// Subscribe, CallPeer and the rest are the Hub's.
	*Hub

	cfg    Config
	grpc   *grpc.Server
	health *health.Server
	engine *script.Engine

	stopOnce   sync.Once
	stopCh     chan struct{}
	stopReason atomic.Pointer[string]
	shutOnce   sync.Once
	shutErr    error

	scriptMu    sync.Mutex
	scriptState ScriptState

	answered atomic.Uint64 // forward calls answered, for MaxCalls
	rejected atomic.Uint64
	// cut is set when Shutdown's grace period has run out: the calls still
	// running are cut short, and their peers never get their answers.
	cut atomic.Bool
}

// New builds a Server from cfg. It listens on nothing until Serve.
func New(cfg Config) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &Server{cfg: cfg, stopCh: make(chan struct{})}
	hub, err := NewHub(HubConfig{
		Registry: backchannel.NewRegistry(), Schema: cfg.Schema, PeerSchema: cfg.PeerSchema,
		Logger: cfg.Logger, Journal: cfg.Journal, JournalBacklog: cfg.JournalBacklog, Bytes: cfg.Bytes,
		NoDiscovery: cfg.NoDiscovery, DiscoveryTimeout: cfg.DiscoveryTimeout,
		Count: func(rec calls.Record) { s.engine.Count(rec) },
		OnConnect: func(ctx context.Context, peer calls.Peer) error {
			if !s.engine.Script().HasOnConnect() {
				return nil
			}
			return s.engine.OnConnect(ctx, peer)
		},
	})
	if err != nil {
		return nil, err
	}
	s.Hub = hub
	s.engine = script.NewEngine(cfg.Script, script.Upstream, script.Options{
		Cut:      s.cut.Load,
		Caller:   s.Hub,
		Observer: calls.ObserverFunc(s.observeEngine),
		Logger:   cfg.Logger,
		Env:      cfg.Env,
	})

	creds := cfg.Creds
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	mux := listenmux.New(creds)
	dialOpts := append([]grpc.DialOption{
		grpc.WithIdleTimeout(cfg.BackchannelIdleTimeout),
		grpc.WithReadBufferSize(cfg.ReadBufferSize),
	}, cfg.BackchannelDialOptions...)
	mux.Register(backchannel.NewServerHandshaker(cfg.Logger, hub.reg, dialOpts, backchannel.WithServerConfiguration(cfg.muxConfiguration())))
	opts := []grpc.ServerOption{
		grpc.Creds(newReportingCreds(mux, s)),
		grpc.ConnectionTimeout(cfg.HandshakeTimeout),
		grpc.MaxConcurrentStreams(maxConcurrentStreams),
		grpc.ReadBufferSize(cfg.ReadBufferSize),
		grpc.WaitForHandlers(true),
		grpc.UnknownServiceHandler(s.unknownService),
		grpc.StatsHandler(dynamic.UnreachedCalls{Report: s.unreached}),
	}
	s.grpc = grpc.NewServer(append(opts, cfg.ServerOptions...)...)
	hs, err := dynamic.RegisterSource(hub.ctx, s.grpc, cfg.Schema, s.engine, dynamic.WithLogger(cfg.Logger))
	if err != nil {
		hub.Close()
		return nil, fmt.Errorf("serve: %w", err)
	}
	s.health = hs
	return s, nil
}

// Serve accepts connections on lis until Shutdown; it may be called for
// several listeners (TCP and a unix socket, say). It returns nil after
// Shutdown.
func (s *Server) Serve(lis net.Listener) error {
	err := s.grpc.Serve(lis)
	if errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

// Engine is the script engine that answers the forward calls.
func (s *Server) Engine() *script.Engine { return s.engine }

// Schema is the schema of the services serve answers.
func (s *Server) Schema() dynamic.Source { return s.cfg.Schema }

// Reload puts a new script in force for calls that start from now on;
// calls counted so far still count for the expectations.
func (s *Server) Reload(sc *script.Script) {
	s.engine.Reload(sc)
	s.scriptMu.Lock()
	s.scriptState.Reloads++
	s.scriptState.LastError, s.scriptState.LastAttempt = "", time.Now()
	s.scriptMu.Unlock()
	s.log.Info("serve: script reloaded", "script", sc.Name)
}

// ScriptState tells which script is in force and how reloading it went.
type ScriptState struct {
	// Name is the name of the script in force.
	Name string
	// Reloads counts the scripts put in force by Reload.
	Reloads int
	// LastError says why the last change of a watched script did not
	// load; "" when the last attempt succeeded (or there was none).
	LastError string
	// LastAttempt is when the script was last reloaded or failed to.
	LastAttempt time.Time
}

// ScriptState returns the state of the script in force.
func (s *Server) ScriptState() ScriptState {
	s.scriptMu.Lock()
	st := s.scriptState
	s.scriptMu.Unlock()
	st.Name = s.engine.Script().Name
	return st
}

func (s *Server) reloadFailed(err error) {
	s.scriptMu.Lock()
	s.scriptState.LastError, s.scriptState.LastAttempt = err.Error(), time.Now()
	s.scriptMu.Unlock()
}

// Check evaluates the expectations of the script in force against every
// call so far.
func (s *Server) Check() *script.Report { return s.engine.Check() }

// StopRequested is closed when the server asks to be stopped: after
// Config.MaxCalls forward calls. The owner then calls Shutdown.
func (s *Server) StopRequested() <-chan struct{} { return s.stopCh }

// StopReason says why StopRequested was closed ("" while it is not).
func (s *Server) StopReason() string {
	if r := s.stopReason.Load(); r != nil {
		return *r
	}
	return ""
}

func (s *Server) requestStop(reason string) {
	s.stopOnce.Do(func() {
		s.stopReason.Store(&reason)
		close(s.stopCh)
	})
}

// Shutdown stops the server: health turns NOT_SERVING, no new calls are
// accepted, and calls in flight may finish until ctx ends; then the
// remaining connections are closed. It returns once every handler has
// returned, so every journal event has been delivered to Config.Journal,
// and journal subscriptions end after delivering what they have queued.
// It returns ctx's error when calls had to be cut short.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutOnce.Do(func() {
		s.health.Shutdown()
		// on_connect and discovery are serve's own work: stop it first so
		// that the peers' connections can drain.
		s.Hub.stop()
		done := make(chan struct{})
		go func() {
			s.grpc.GracefulStop()
			close(done)
		}()
		select {
		case <-done:
		case <-ctx.Done():
			s.cut.Store(true)
			s.grpc.Stop()
			<-done
			s.shutErr = fmt.Errorf("serve: calls still running at shutdown were cancelled: %w", ctx.Err())
		}
		s.Hub.Close()
	})
	return s.shutErr
}

// Stats are the server's counters.
type Stats struct {
	Started time.Time
	// Peers is the number of connected multiplexed peers.
	Peers int
	// PlainClients is the number of connected plain gRPC clients: they
	// have no backchannel, so they are not peers.
	PlainClients int
	// ForwardCalls counts the forward calls answered (plain clients
	// included); ReverseCalls the reverse calls made.
	ForwardCalls uint64
	ReverseCalls uint64
	// CutCalls counts the forward calls cut short when Shutdown's grace
	// period ran out: their peers got UNAVAILABLE, not an answer.
	CutCalls uint64
	// RejectedConnections counts connections that failed the handshake
	// (TLS, backchannel, or bytes that are neither).
	RejectedConnections uint64
	// JournalErrors counts events Config.Journal failed to write.
	JournalErrors uint64
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	st := s.Hub.Stats()
	st.RejectedConnections = s.rejected.Load()
	return st
}

// mergeContext returns a context that ends when either a or b does.
func mergeContext(a, b context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(a)
	stop := context.AfterFunc(b, cancel)
	return ctx, func() {
		stop()
		cancel()
	}
}
