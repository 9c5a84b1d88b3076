package serve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"
)

// Service is what Run serves on its listeners: a *Server, or another gRPC
// server built around the same journal and registry (a proxy's).
type Service interface {
	// Serve accepts connections on lis until Shutdown, and then returns
	// nil. It is called once per listener, concurrently.
	Serve(lis net.Listener) error
	// Shutdown stops accepting connections, lets calls in flight finish
	// until ctx ends, and returns once every handler has returned (for a
	// *Server: once every journal event has reached Config.Journal). It
	// returns why calls had to be cut short, if they had.
	Shutdown(ctx context.Context) error
}

// StopRequester is a Service that can ask to be stopped: a *Server after
// Config.MaxCalls forward calls. Run watches StopRequested.
type StopRequester interface {
	// StopRequested is closed when the Service asks to be stopped.
	StopRequested() <-chan struct{}
	// StopReason says why, in words for people.
	StopReason() string
}

var (
	_ Service       = (*Server)(nil)
	_ StopRequester = (*Server)(nil)
)

// ListenFunc opens a listener. Run calls it; the listener is Run's from
// then on (it is closed on every path).
type ListenFunc func() (net.Listener, error)

// AdminConfig is a second gRPC server (the admin API) on its own listener.
type AdminConfig struct {
	// Listen opens the admin listener, after the main listeners.
	Listen ListenFunc
	// New builds the admin server once every listener is open; it is
	// told where they are. It is stopped after the Service has shut down,
	// so streams that follow the Service end first.
	New func(Listening) (*grpc.Server, error)
}

// Listening says where a Run serves.
type Listening struct {
	// Listen are the main listeners' addresses (ListenURL), in the order
	// of RunConfig.Listen.
	Listen []string
	// Admin is the admin listener's address; "" without one.
	Admin string
}

// A Follower follows the Service from before it serves until after it
// has shut down: printing calls and peers as they come, say. Run calls it
// in its own goroutine before any listener serves (subscribe there, so
// that nothing is missed), and runs the function it returns in a
// goroutine of its own. ctx ends once the Service has shut down; a
// *Server's subscriptions and peer watches end by themselves then, after
// delivering what they had queued.
type Follower func(ctx context.Context) (follow func())

// RunConfig configures Run.
type RunConfig struct {
	// Service serves every main listener. Run owns it: it is shut down on
	// every path, a listener that does not open included.
	Service Service
	// Listen opens the main listeners. All are opened before any serves,
	// so that an address in use fails before anything is served. At least
	// one is required.
	Listen []ListenFunc
	// Admin, when set, serves a second gRPC server on its own listener.
	Admin *AdminConfig
	// MaxTime stops the Run after this long; 0 means no limit.
	MaxTime time.Duration
	// Grace is how long calls in flight may take to finish once Run
	// stops; then they are cancelled. 0 cancels them at once.
	Grace time.Duration
	// Serving, when set, is called once every listener serves, before
	// Background and Foreground start: the place to say where.
	Serving func(Listening)
	// Followers follow the Service (see Follower).
	Followers []Follower
	// Background work runs from Serving until Run stops (a script file
	// watch, say); ctx ends when Run decides to stop.
	Background []func(ctx context.Context)
	// Foreground, when set, runs from Serving until Run stops, and its
	// return stops Run (StopForeground): a terminal UI that the person
	// quits, or a scripted flow (the demo). ctx ends when Run stops for
	// another reason; what it returns then is not reported.
	Foreground func(ctx context.Context, l Listening) error
}

// StopReason says why a Run stopped.
type StopReason int

// The reasons a Run stops.
const (
	// StopCanceled: the context given to Run ended (bcctl cancels it on
	// SIGINT and SIGTERM). Stopped.Detail is its cause.
	StopCanceled StopReason = iota + 1
	// StopMaxTime: RunConfig.MaxTime passed.
	StopMaxTime
	// StopRequested: the Service asked (StopRequester). Stopped.Detail is
	// its reason.
	StopRequested
	// StopListenerFailed: a listener, or the admin listener, failed.
	// Stopped.Err is why.
	StopListenerFailed
	// StopForeground: RunConfig.Foreground returned. Stopped.Err is its
	// error, if any.
	StopForeground
)

// String names the reason.
func (r StopReason) String() string {
	switch r {
	case StopCanceled:
		return "canceled"
	case StopMaxTime:
		return "max time passed"
	case StopRequested:
		return "stop requested"
	case StopListenerFailed:
		return "listener failed"
	case StopForeground:
		return "foreground ended"
	}
	return fmt.Sprintf("StopReason(%d)", int(r))
}

// Stopped is how a Run ended. When Run returns it, every goroutine Run
// started has returned, every listener is closed and the Service has shut
// down.
type Stopped struct {
	// Reason says why Run stopped; branch on it.
	Reason StopReason
	// Detail says it in words for people, where the Reason has more to
	// say: the context's cause (StopCanceled), the Service's reason
	// (StopRequested).
	Detail string
	// Err is the failure that stopped Run: a listener's, or the
	// Foreground's error. Nil when Run stopped as asked.
	Err error
	// ShutdownErr is the Service's Shutdown error: calls still running
	// after the grace were cancelled.
	ShutdownErr error
	// Listening is where Run served.
	Listening Listening
}

// Run serves cfg.Service on the listeners until something says stop: ctx
// ends, MaxTime passes, the Service asks (StopRequester), a listener fails
// or the Foreground returns. Then it shuts everything down, in this
// order: Background and Foreground are told to stop, the Service shuts
// down (calls in flight get Grace), the admin server stops, and Run waits
// for every goroutine it started; Followers are told to stop last.
//
// Run returns an error, and no Stopped, when it could not start serving
// (a listener that does not open, an admin server that cannot be built);
// the Service has been shut down then too.
func Run(ctx context.Context, cfg RunConfig) (*Stopped, error) {
	s := &supervisor{cfg: cfg, failed: make(chan error, len(cfg.Listen)+1), fgDone: make(chan error, 1)}
	s.runCtx, s.cancelRun = context.WithCancel(ctx)
	s.followCtx, s.cancelFollow = context.WithCancel(context.WithoutCancel(ctx))
	if err := s.start(); err != nil {
		s.shutdown()
		return nil, err
	}
	st := s.waitForStop(ctx)
	st.ShutdownErr = s.shutdown()
	st.Listening = s.listening
	return st, nil
}

// supervisor is one Run: it owns the listeners, the admin server and every
// goroutine it starts.
type supervisor struct {
	cfg       RunConfig
	listeners []net.Listener
	adminLis  net.Listener
	admin     *grpc.Server
	listening Listening

	runCtx       context.Context // ends when Run stops: Background, Foreground
	cancelRun    context.CancelFunc
	followCtx    context.Context // ends after the Service shut down: Followers
	cancelFollow context.CancelFunc

	failed    chan error // a listener failed
	fgDone    chan error // the Foreground returned
	fgRunning bool       // the Foreground runs and fgDone was not read

	serving    sync.WaitGroup // the listeners' Serve
	background sync.WaitGroup // Background
	following  sync.WaitGroup // Followers
}

// start opens every listener, builds the admin server and starts the
// goroutines.
func (s *supervisor) start() error {
	if s.cfg.Service == nil {
		return errors.New("serve: run: no Service")
	}
	if len(s.cfg.Listen) == 0 {
		return errors.New("serve: run: no listener")
	}
	for _, listen := range s.cfg.Listen {
		lis, err := listen()
		if err != nil {
			return err
		}
		s.listeners = append(s.listeners, lis)
		s.listening.Listen = append(s.listening.Listen, ListenURL(lis))
	}
	if a := s.cfg.Admin; a != nil {
		lis, err := a.Listen()
		if err != nil {
			return err
		}
		s.adminLis = lis
		s.listening.Admin = ListenURL(lis)
		if s.admin, err = a.New(s.listening); err != nil {
			return err
		}
	}

	for _, f := range s.cfg.Followers {
		follow := f(s.followCtx)
		s.following.Go(follow)
	}
	for _, lis := range s.listeners {
		s.serving.Go(func() {
			if err := s.cfg.Service.Serve(lis); err != nil {
				s.failed <- fmt.Errorf("serve on %s: %w", ListenURL(lis), err)
			}
		})
	}
	if s.admin != nil {
		s.serving.Go(func() {
			if err := s.admin.Serve(s.adminLis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				s.failed <- fmt.Errorf("admin API on %s: %w", s.listening.Admin, err)
			}
		})
	}
	if s.cfg.Serving != nil {
		s.cfg.Serving(s.listening)
	}
	for _, bg := range s.cfg.Background {
		s.background.Go(func() { bg(s.runCtx) })
	}
	if fg := s.cfg.Foreground; fg != nil {
		s.fgRunning = true
		go func() { s.fgDone <- fg(s.runCtx, s.listening) }()
	}
	return nil
}

// waitForStop waits until something says stop.
func (s *supervisor) waitForStop(ctx context.Context) *Stopped {
	var maxTime <-chan time.Time
	if s.cfg.MaxTime > 0 {
		t := time.NewTimer(s.cfg.MaxTime)
		defer t.Stop()
		maxTime = t.C
	}
	var requested <-chan struct{}
	sr, canRequest := s.cfg.Service.(StopRequester)
	if canRequest {
		requested = sr.StopRequested()
	}
	select {
	case <-ctx.Done():
		return &Stopped{Reason: StopCanceled, Detail: context.Cause(ctx).Error()}
	case <-maxTime:
		return &Stopped{Reason: StopMaxTime}
	case <-requested:
		return &Stopped{Reason: StopRequested, Detail: sr.StopReason()}
	case err := <-s.failed:
		return &Stopped{Reason: StopListenerFailed, Err: err}
	case err := <-s.fgDone:
		s.fgRunning = false
		return &Stopped{Reason: StopForeground, Err: err}
	}
}

// shutdown is the one place where a Run ends, whether it served or not:
// it returns the Service's Shutdown error.
func (s *supervisor) shutdown() error {
	s.cancelRun()
	gctx, cancel := context.WithTimeout(context.Background(), s.cfg.Grace)
	defer cancel()
	var shutErr error
	if s.cfg.Service != nil {
		shutErr = s.cfg.Service.Shutdown(gctx)
	}
	if s.admin != nil {
		s.admin.Stop()
	}
	// Serve closes its listener when it returns; these never served, or
	// the Service is done with them.
	for _, lis := range s.listeners {
		lis.Close()
	}
	if s.adminLis != nil {
		s.adminLis.Close()
	}
	s.serving.Wait()
	s.background.Wait()
	s.cancelFollow()
	s.following.Wait()
	if s.fgRunning {
		<-s.fgDone
		s.fgRunning = false
	}
	return shutErr
}
