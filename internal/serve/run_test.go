package serve

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// fakeService serves nothing: Serve waits for Shutdown (or fails at once
// with serveErr), and it asks to be stopped when requested is closed.
type fakeService struct {
	serveErr  error
	requested chan struct{}

	shutdowns atomic.Int32
	once      sync.Once
	down      chan struct{}
}

func newFakeService() *fakeService {
	return &fakeService{requested: make(chan struct{}), down: make(chan struct{})}
}

func (f *fakeService) Serve(lis net.Listener) error {
	if f.serveErr != nil {
		return f.serveErr
	}
	<-f.down
	return lis.Close()
}

func (f *fakeService) Shutdown(context.Context) error {
	f.shutdowns.Add(1)
	f.once.Do(func() { close(f.down) })
	return nil
}

func (f *fakeService) StopRequested() <-chan struct{} { return f.requested }
func (f *fakeService) StopReason() string             { return "enough" }

// trackedListener records that it was closed.
type trackedListener struct {
	net.Listener
	closed atomic.Bool
}

func (l *trackedListener) Close() error {
	l.closed.Store(true)
	return l.Listener.Close()
}

func listenLoopback(t *testing.T, tracked **trackedListener) ListenFunc {
	return func() (net.Listener, error) {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		tl := &trackedListener{Listener: lis}
		if tracked != nil {
			*tracked = tl
		}
		return tl, nil
	}
}

// TestRunStopReasons: each thing that says stop gives its own reason, and
// callers branch on it.
func TestRunStopReasons(t *testing.T) {
	errUI := errors.New("the UI broke")
	errListener := errors.New("accept failed")
	tests := []struct {
		name       string
		configure  func(*RunConfig, *fakeService, context.CancelCauseFunc)
		wantReason StopReason
		wantDetail string
		wantErr    error
	}{{
		name: "canceled",
		configure: func(_ *RunConfig, _ *fakeService, cancel context.CancelCauseFunc) {
			cancel(errors.New("interrupted"))
		},
		wantReason: StopCanceled, wantDetail: "interrupted",
	}, {
		name:       "max time",
		configure:  func(rc *RunConfig, _ *fakeService, _ context.CancelCauseFunc) { rc.MaxTime = time.Nanosecond },
		wantReason: StopMaxTime,
	}, {
		name:       "requested by the service",
		configure:  func(_ *RunConfig, f *fakeService, _ context.CancelCauseFunc) { close(f.requested) },
		wantReason: StopRequested, wantDetail: "enough",
	}, {
		name:       "listener failed",
		configure:  func(_ *RunConfig, f *fakeService, _ context.CancelCauseFunc) { f.serveErr = errListener },
		wantReason: StopListenerFailed, wantErr: errListener,
	}, {
		name: "foreground done",
		configure: func(rc *RunConfig, _ *fakeService, _ context.CancelCauseFunc) {
			rc.Foreground = func(context.Context, Listening) error { return nil }
		},
		wantReason: StopForeground,
	}, {
		name: "foreground failed",
		configure: func(rc *RunConfig, _ *fakeService, _ context.CancelCauseFunc) {
			rc.Foreground = func(context.Context, Listening) error { return errUI }
		},
		wantReason: StopForeground, wantErr: errUI,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancelCause(testContext(t))
			defer cancel(nil)
			f := newFakeService()
			rc := RunConfig{Service: f, Listen: []ListenFunc{listenLoopback(t, nil)}}
			tc.configure(&rc, f, cancel)
			st, err := Run(ctx, rc)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if st.Reason != tc.wantReason || st.Detail != tc.wantDetail {
				t.Errorf("stopped with %v %q, want %v %q", st.Reason, st.Detail, tc.wantReason, tc.wantDetail)
			}
			if !errors.Is(st.Err, tc.wantErr) || (tc.wantErr == nil) != (st.Err == nil) {
				t.Errorf("Err = %v, want %v", st.Err, tc.wantErr)
			}
			if n := f.shutdowns.Load(); n != 1 {
				t.Errorf("the service was shut down %d times, want once", n)
			}
		})
	}
}

// TestRunWaitsForEveryGoroutine: when a listener fails under a foreground
// that only returns once told to (a terminal UI), Run still waits for it,
// for the background work and for the followers, on top of the listeners.
func TestRunWaitsForEveryGoroutine(t *testing.T) {
	f := newFakeService()
	f.serveErr = errors.New("accept failed")
	var fg, bg, follower atomic.Bool
	var lis *trackedListener
	st, err := Run(testContext(t), RunConfig{
		Service: f,
		Listen:  []ListenFunc{listenLoopback(t, &lis)},
		Foreground: func(ctx context.Context, _ Listening) error {
			<-ctx.Done()
			fg.Store(true)
			return errors.New("told to stop: not reported")
		},
		Background: []func(context.Context){func(ctx context.Context) {
			<-ctx.Done()
			bg.Store(true)
		}},
		Followers: []Follower{func(ctx context.Context) func() {
			return func() {
				<-ctx.Done()
				follower.Store(true)
			}
		}},
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if st.Reason != StopListenerFailed || !strings.Contains(st.Err.Error(), "serve on 127.0.0.1:") {
		t.Errorf("stopped with %v: %v; want a listener failure naming the address", st.Reason, st.Err)
	}
	if !fg.Load() || !bg.Load() || !follower.Load() {
		t.Errorf("Run returned before its goroutines: foreground %v, background %v, follower %v", fg.Load(), bg.Load(), follower.Load())
	}
	if !lis.closed.Load() {
		t.Error("the listener was left open")
	}
}

// TestRunSetupFailure: a listener that does not open ends Run before
// anything serves; what was opened is closed and the service shut down.
func TestRunSetupFailure(t *testing.T) {
	f := newFakeService()
	errInUse := errors.New("address in use")
	var first *trackedListener
	served, followed := false, false
	st, err := Run(testContext(t), RunConfig{
		Service: f,
		Listen: []ListenFunc{
			listenLoopback(t, &first),
			func() (net.Listener, error) { return nil, errInUse },
		},
		Serving:   func(Listening) { served = true },
		Followers: []Follower{func(context.Context) func() { followed = true; return func() {} }},
	})
	if !errors.Is(err, errInUse) || st != nil {
		t.Fatalf("Run = %v, %v; want the listen error and no Stopped", st, err)
	}
	if !first.closed.Load() {
		t.Error("the listener that opened was left open")
	}
	if n := f.shutdowns.Load(); n != 1 {
		t.Errorf("the service was shut down %d times, want once", n)
	}
	if served || followed {
		t.Errorf("Serving called: %v, followers started: %v; want neither", served, followed)
	}
}

// TestRunServer runs a real Server with an admin server: the follower sees
// every call made while it serves, the admin listener answers, and the
// admin server is stopped with the rest.
func TestRunServer(t *testing.T) {
	ctx, cancel := context.WithCancelCause(testContext(t))
	defer cancel(nil)
	srv, err := New(Config{Schema: corpusSchema(t), Script: parseScript(t, "serve.yaml", `
rules:
  - match: {method: acme.Users/Get}
    reply: {name: "user ${req.id}"}
`)})
	if err != nil {
		t.Fatal(err)
	}
	var adminLis *trackedListener
	serving := make(chan Listening, 1)
	seen := make(chan string, 10)
	type result struct {
		st  *Stopped
		err error
	}
	done := make(chan result, 1)
	go func() {
		st, err := Run(ctx, RunConfig{
			Service: srv,
			Listen:  []ListenFunc{func() (net.Listener, error) { return Listen("127.0.0.1:0") }},
			Admin: &AdminConfig{
				Listen: listenLoopback(t, &adminLis),
				New: func(Listening) (*grpc.Server, error) {
					g := grpc.NewServer()
					healthpb.RegisterHealthServer(g, health.NewServer())
					return g, nil
				},
			},
			Grace:   10 * time.Second,
			Serving: func(l Listening) { serving <- l },
			Followers: []Follower{func(ctx context.Context) func() {
				sub := srv.Subscribe(ctx, SubscribeOptions{Follow: true})
				return func() {
					for ev := range sub.C {
						seen <- ev.Call.Method
					}
					close(seen)
				}
			}},
		})
		done <- result{st, err}
	}()
	l := <-serving
	if _, st := call(t, ctx, dialPlain(t, l.Listen[0]), "acme.Users/Get", `{"id": "7"}`); st.Err() != nil {
		t.Fatalf("the call failed: %v", st.Err())
	}
	if _, err := healthpb.NewHealthClient(dialPlain(t, l.Admin)).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("the admin listener did not answer: %v", err)
	}
	cancel(errors.New("interrupted"))
	res := <-done
	if res.err != nil {
		t.Fatalf("Run: %v", res.err)
	}
	if res.st.Reason != StopCanceled || res.st.ShutdownErr != nil {
		t.Errorf("stopped with %v (shutdown: %v), want %v", res.st.Reason, res.st.ShutdownErr, StopCanceled)
	}
	var methods []string
	for m := range seen {
		methods = append(methods, m)
	}
	if len(methods) != 1 || methods[0] != "acme.Users/Get" {
		t.Errorf("the follower saw %q, want the one call", methods)
	}
	if !adminLis.closed.Load() {
		t.Error("the admin listener was left open")
	}
}
