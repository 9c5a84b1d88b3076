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
	// multiplexing errors, responders that misbehave). It writes to stderr
	// at the level of BCCTL_LOG (debug, info, warn, error; default: warn).
	Logger *slog.Logger
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
	return &Factory{
		IOStreams: io,
		Getenv:    os.Getenv,
		Logger:    newLogger(io.ErrOut, os.Getenv("BCCTL_LOG")),
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

// newLogger returns a text logger to w at level ("" means warn; "off"
// discards).
func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	switch strings.ToLower(level) {
	case "off", "none":
		return slog.New(slog.DiscardHandler)
	case "debug":
		l = slog.LevelDebug
	case "info":
		l = slog.LevelInfo
	case "error":
		l = slog.LevelError
	default:
		l = slog.LevelWarn
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}
