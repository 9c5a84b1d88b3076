package tui

import (
	"context"
	"errors"
	"io"
	"os"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/term"

	"github.com/bcctl/bcctl/internal/tui/forward"
)

// The screen size used when the output is not a terminal that can tell its
// size (a pipe in tests, a serial console).
const (
	fallbackWidth  = 120
	fallbackHeight = 36
)

// RunAnswer runs the answer program on the terminal (the alternate screen)
// with keys read from in and the screen written to out, until the person
// quits or ctx is done; then it closes cfg.Responder, so calls still
// pending get UNAVAILABLE and later ones go to the script. The terminal is
// restored in every case.
func RunAnswer(ctx context.Context, cfg AnswerConfig, in io.Reader, out io.Writer) error {
	defer cfg.Responder.Close()
	m := NewAnswerModel(cfg)
	// Forward calls still in flight are cancelled, and have been reported
	// (journaled) with what happened, before the command goes on.
	defer stopCalls(m.fwd)
	return run(ctx, m, in, out)
}

// RunServe runs the serve program on the terminal until the person quits
// or ctx is done. Its watches end with it.
func RunServe(ctx context.Context, cfg ServeConfig, in io.Reader, out io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cfg.Context = ctx
	m := NewServeModel(cfg)
	defer stopCalls(m.fwd)
	return run(ctx, m, in, out)
}

// stopWait bounds how long quitting waits for the calls in flight to end
// once they are cancelled.
const stopWait = 5 * time.Second

// stopCalls cancels the calls a forward pane has in flight and waits for
// them to be reported.
func stopCalls(f forward.Model) {
	ctx, cancel := context.WithTimeout(context.Background(), stopWait)
	defer cancel()
	f.Stop(ctx)
}

// run runs model until the person quits (nil) or ctx is done (ctx's
// error).
func run(ctx context.Context, model tea.Model, in io.Reader, out io.Writer) error {
	p := tea.NewProgram(model, tea.WithAltScreen(), tea.WithContext(ctx), tea.WithInput(in), tea.WithOutput(out))
	if !isTerminal(out) {
		go p.Send(tea.WindowSizeMsg{Width: fallbackWidth, Height: fallbackHeight})
	}
	_, err := p.Run()
	if errors.Is(err, tea.ErrProgramKilled) && ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return err
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(f.Fd())
}
