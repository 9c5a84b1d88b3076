package main

import (
	"io"
	"log/slog"
	"os"
	"strings"
)

// Factory holds what every command needs from its surroundings. Commands
// take it in their constructor and copy what they use into their options
// struct, so tests build a Factory over buffers and run commands without a
// process.
type Factory struct {
	// IOStreams are the standard streams.
	IOStreams *IOStreams
	// Getenv reads the environment (header expansion, ${env.X} in scripts).
	Getenv func(string) string
	// Logger receives diagnostics of the libraries (the backchannel's
	// multiplexing errors, responders that misbehave; yamux's own lines at
	// debug). It writes to stderr at the level of BCCTL_LOG (debug, info,
	// warn, error, off; default: warn, and debug under -vv).
	Logger *slog.Logger
	// logLevel is Logger's level when -vv may lower it to debug: nil when
	// BCCTL_LOG chose the level, or the Logger is not the process's.
	logLevel *slog.LevelVar
	// Interactive answers reverse calls with a person (call and connect
	// --tui; connect's default on a terminal without --answer). Nil means
	// this bcctl has no interactive answerer, and --tui is refused.
	Interactive AnswerUI
	// ServeUI shows a running serve in a terminal UI (serve --tui). Nil
	// means serve --tui is refused.
	ServeUI ServeUI
}

// NewFactory returns the Factory of a real process over io.
func NewFactory(io *IOStreams) *Factory {
	logger, level := newLogger(io.ErrOut, os.Getenv("BCCTL_LOG"))
	return &Factory{
		IOStreams: io,
		Getenv:    os.Getenv,
		Logger:    logger,
		logLevel:  level,
		// The TUI (internal/tui, tui.go) answers reverse calls and shows a
		// running serve.
		Interactive: answerInTUI,
		ServeUI:     serveInTUI,
	}
}

// TestFactory returns a Factory over io with an empty environment, a
// logger that discards everything, and the real TUI (tests drive it over
// a fake terminal; set the fields to nil to test bcctl without it).
func TestFactory(io *IOStreams) *Factory {
	return &Factory{
		IOStreams:   io,
		Getenv:      func(string) string { return "" },
		Logger:      slog.New(slog.DiscardHandler),
		Interactive: answerInTUI,
		ServeUI:     serveInTUI,
	}
}

// newLogger returns a text logger to w at level ("" means warn, which
// the returned LevelVar can change; "off" discards). The LevelVar is nil
// when level names a level: the user chose it.
func newLogger(w io.Writer, level string) (*slog.Logger, *slog.LevelVar) {
	var l slog.Level
	switch strings.ToLower(level) {
	case "off", "none":
		return slog.New(slog.DiscardHandler), nil
	case "debug":
		l = slog.LevelDebug
	case "info":
		l = slog.LevelInfo
	case "warn":
		l = slog.LevelWarn
	case "error":
		l = slog.LevelError
	default:
		v := new(slog.LevelVar)
		v.Set(slog.LevelWarn)
		return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: v})), v
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// verboseLog lowers the Logger to the debug level for -vv, unless
// BCCTL_LOG chose the level: the libraries' own lines (yamux's) are shown
// then, and only then.
func (f *Factory) verboseLog(verbosity int) {
	if verbosity > 1 && f.logLevel != nil {
		f.logLevel.Set(slog.LevelDebug)
	}
}
