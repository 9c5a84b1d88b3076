package main

import (
	"bytes"
	"io"
	"os"
	"sync"

	"github.com/mattn/go-isatty"
)

// IOStreams are the standard streams of a command, with what is known about
// them: whether each is a terminal (people get tables and colors; pipes get
// JSON lines) and whether color is wanted. Commands never touch os.Stdin,
// os.Stdout or os.Stderr directly, so their run functions can be tested
// with buffers.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer

	inTTY, outTTY, errTTY bool
	color                 bool

	outMu sync.Mutex
}

// SystemIO returns the process's standard streams. Color is on when stdout
// is a terminal, NO_COLOR is not set (https://no-color.org) and TERM is
// not "dumb"; CLICOLOR_FORCE=1 forces it on.
func SystemIO() *IOStreams {
	s := &IOStreams{
		In:     os.Stdin,
		Out:    os.Stdout,
		ErrOut: os.Stderr,
		inTTY:  isTerminal(os.Stdin),
		outTTY: isTerminal(os.Stdout),
		errTTY: isTerminal(os.Stderr),
	}
	s.color = colorWanted(s.outTTY, os.Getenv)
	return s
}

func isTerminal(f *os.File) bool {
	fd := f.Fd()
	return isatty.IsTerminal(fd) || isatty.IsCygwinTerminal(fd)
}

// colorWanted decides whether to color output to a stream that is (or is
// not) a terminal, honouring NO_COLOR, CLICOLOR_FORCE and TERM=dumb.
func colorWanted(tty bool, getenv func(string) string) bool {
	if getenv("NO_COLOR") != "" {
		return false
	}
	if f := getenv("CLICOLOR_FORCE"); f != "" && f != "0" {
		return true
	}
	return tty && getenv("TERM") != "dumb"
}

// TestIO returns IOStreams over buffers, none of them a terminal, color off.
func TestIO() (s *IOStreams, in, out, errOut *bytes.Buffer) {
	in, out, errOut = &bytes.Buffer{}, &bytes.Buffer{}, &bytes.Buffer{}
	return &IOStreams{In: in, Out: out, ErrOut: errOut}, in, out, errOut
}

// IsStdinTTY reports whether stdin is a terminal.
func (s *IOStreams) IsStdinTTY() bool { return s.inTTY }

// IsStdoutTTY reports whether stdout is a terminal: output is for people
// (tables, human text) rather than for programs (JSON lines).
func (s *IOStreams) IsStdoutTTY() bool { return s.outTTY }

// IsStderrTTY reports whether stderr is a terminal.
func (s *IOStreams) IsStderrTTY() bool { return s.errTTY }

// SetStdinTTY overrides terminal detection for stdin (tests, --tui).
func (s *IOStreams) SetStdinTTY(v bool) { s.inTTY = v }

// SetStdoutTTY overrides terminal detection for stdout (tests).
func (s *IOStreams) SetStdoutTTY(v bool) { s.outTTY = v }

// SetStderrTTY overrides terminal detection for stderr (tests).
func (s *IOStreams) SetStderrTTY(v bool) { s.errTTY = v }

// ColorEnabled reports whether output may use ANSI colors.
func (s *IOStreams) ColorEnabled() bool { return s.color }

// SetColorEnabled overrides the color decision (tests).
func (s *IOStreams) SetColorEnabled(v bool) { s.color = v }

// ColorScheme returns the colors for this output (no-ops when color is
// off).
func (s *IOStreams) ColorScheme() ColorScheme { return ColorScheme{enabled: s.color} }

// SyncOut returns a writer to Out whose writes never interleave with other
// writes through SyncOut or SyncErrOut: reverse calls are printed from the
// goroutines that answer them while the forward call prints its responses.
// Each Write is one unit; write whole blocks at once.
func (s *IOStreams) SyncOut() io.Writer { return &lockedWriter{mu: &s.outMu, w: s.Out} }

// SyncErrOut is SyncOut for ErrOut (sharing the same lock).
func (s *IOStreams) SyncErrOut() io.Writer { return &lockedWriter{mu: &s.outMu, w: s.ErrOut} }

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// ColorScheme colors text with ANSI escapes when enabled.
type ColorScheme struct{ enabled bool }

func (c ColorScheme) wrap(code, s string) string {
	if !c.enabled || s == "" {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

// Bold makes s bold.
func (c ColorScheme) Bold(s string) string { return c.wrap("1", s) }

// Dim makes s faint.
func (c ColorScheme) Dim(s string) string { return c.wrap("2", s) }

// Green colors s green (success).
func (c ColorScheme) Green(s string) string { return c.wrap("32", s) }

// Red colors s red (failure).
func (c ColorScheme) Red(s string) string { return c.wrap("31", s) }

// Yellow colors s yellow (attention).
func (c ColorScheme) Yellow(s string) string { return c.wrap("33", s) }

// Cyan colors s cyan (names).
func (c ColorScheme) Cyan(s string) string { return c.wrap("36", s) }
