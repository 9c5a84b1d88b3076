package tui

import (
	"context"
	"errors"

	tea "github.com/charmbracelet/bubbletea"
)

// RunAnswer runs the answer program on the terminal (the alternate screen)
// until the person quits or ctx is done; then it closes cfg.Responder, so
// calls still pending get UNAVAILABLE and later ones go to the script.
// The terminal is restored in every case. opts are added to the program's
// options (tea.WithInput, tea.WithOutput, ...).
func RunAnswer(ctx context.Context, cfg AnswerConfig, opts ...tea.ProgramOption) error {
	defer cfg.Responder.Close()
	return run(ctx, NewAnswerModel(cfg), opts)
}

// run runs model until the person quits (nil) or ctx is done (ctx's
// error).
func run(ctx context.Context, model tea.Model, opts []tea.ProgramOption) error {
	p := tea.NewProgram(model, append([]tea.ProgramOption{tea.WithAltScreen(), tea.WithContext(ctx)}, opts...)...)
	_, err := p.Run()
	if errors.Is(err, tea.ErrProgramKilled) && ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return err
}

// RunServe runs the serve program on the terminal until the person quits
// or ctx is done. Its watches end with it.
func RunServe(ctx context.Context, cfg ServeConfig, opts ...tea.ProgramOption) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cfg.Context = ctx
	return run(ctx, NewServeModel(cfg), opts)
}
