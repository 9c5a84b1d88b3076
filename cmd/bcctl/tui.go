package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/client"
	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/journal"
	"github.com/bcctl/bcctl/internal/script"
	"github.com/bcctl/bcctl/internal/tui"
	"github.com/bcctl/bcctl/internal/tui/answer"
	"github.com/bcctl/bcctl/internal/tui/forward"
	"github.com/bcctl/bcctl/internal/tui/theme"
)

// serveInTUI runs the serve program over a running serve until the person
// quits (nil) or ctx ends.
func serveInTUI(ctx context.Context, env ServeUIEnv) error {
	cfg := tui.ServeEngine(env.Hub)
	cfg.Theme = tuiTheme(env.IO)
	cfg.Title = "listening on " + strings.Join(env.Listen, ", ")
	if env.Title != "" {
		cfg.Title = env.Title
	}
	cfg.Program = env.Program
	cfg.Notices = env.Notices
	return tui.RunServe(ctx, cfg, env.IO.In, env.IO.Out)
}

// answerInTUI is the AnswerUI of a real process: it starts the answer
// program on the command's terminal and returns its Responder. A person
// quitting ends the command (env.Stop); the command ending closes the
// program (the Responder's Close), which restores the terminal before the
// command prints anything more.
func answerInTUI(env client.ResponderEnv, streams *IOStreams) (dynamic.Responder, error) {
	byTUI := calls.ObserverFunc(func(ev *calls.Event) { env.Report(ev, journal.ByTUI) })
	var types dynamic.TypeResolver
	if env.Hosted != nil {
		types = env.Hosted.Types()
	}
	// The script can take a call over only when it has backchannel rules
	// (without --answer, the engine runs an empty script).
	var engine *script.Engine
	if env.Engine != nil && len(env.Engine.Script().Backchannel) > 0 {
		engine = env.Engine
	}
	opts := answer.Options{Script: engine, Observer: byTUI, Resolver: types}
	if env.Conn != nil {
		// A call that ends because the connection closed is lost, not
		// cancelled by its caller.
		opts.Gone = env.Conn.BackchannelClosed
	}
	r := answer.NewResponder(opts)

	ctx, cancel := context.WithCancel(env.Context)
	t := &tuiRun{Responder: r, cancel: cancel, done: make(chan struct{})}
	cfg := tui.AnswerConfig{
		Responder: r, Resolver: types, Bytes: env.Bytes,
		Theme: tuiTheme(streams),
	}
	if env.Conn != nil {
		cfg.Title = "connected to " + env.Conn.Address()
		// The forward screen: the forward schema, or the server's
		// reflection when the command did not need the schema itself.
		src := env.Forward
		if src == nil {
			refl := dynamic.NewSourceFromReflection(ctx, env.Conn.ClientConn(), nil)
			t.closeSource = refl.Close
			src = refl
		}
		cfg.Forward = &forward.Config{
			Source:  src,
			Invoker: forward.Observed(forward.ConnInvoker(env.Conn.ClientConn()), byTUI, calls.Forward, calls.Peer{Addr: env.Conn.Address()}),
			Headers: env.Headers,
			Target:  env.Conn.Address(),
			Bytes:   env.Bytes,
		}
	}
	if engine != nil {
		cfg.Title += " · script " + engine.Script().Name
	}
	if env.Hosted == nil {
		cfg.Title += " · hosting nothing: give the schema of the services you answer (--backchannel-proto, --proto)"
	}
	if env.Conn != nil {
		// When the server goes away, the calls it left waiting say so and
		// the queue stays on the screen (connect waits for the person to
		// leave).
		go func() {
			select {
			case <-env.Conn.Lost():
				if ctx.Err() == nil {
					r.ConnectionLost(fmt.Errorf("the server at %s closed the connection", env.Conn.Address()))
				}
			case <-ctx.Done():
			}
		}()
	}
	go func() {
		defer close(t.done)
		err := tui.RunAnswer(ctx, cfg, streams.In, streams.Out)
		if ctx.Err() == nil { // the person quit, or the program failed
			if err != nil {
				t.setErr(fmt.Errorf("tui: %w", err))
			}
			env.Stop()
		}
	}()
	return t, nil
}

// tuiRun is the running answer program: its Responder answers the
// reverse calls, and Close ends the program.
type tuiRun struct {
	*answer.Responder
	cancel      context.CancelFunc
	done        chan struct{}
	closeSource func() error

	mu  sync.Mutex
	err error
}

func (t *tuiRun) setErr(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.err = err
}

// Close ends the program and waits until the terminal is restored; calls
// still waiting get UNAVAILABLE. It returns why the program failed, if it
// did.
func (t *tuiRun) Close() error {
	t.cancel()
	<-t.done
	t.Responder.Close()
	var errs []error
	if t.closeSource != nil {
		errs = append(errs, t.closeSource())
	}
	t.mu.Lock()
	errs = append(errs, t.err)
	t.mu.Unlock()
	return errors.Join(errs...)
}

// tuiTheme styles the TUI with color when the command's output may use it
// (a terminal, no NO_COLOR, TERM not dumb).
func tuiTheme(streams *IOStreams) theme.Theme {
	if !streams.ColorEnabled() {
		return theme.New(theme.Plain())
	}
	return theme.New(theme.NewRenderer(streams.Out, func(string) string { return "" }))
}
