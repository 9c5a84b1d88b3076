package script

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/bcctl/bcctl/internal/calls"
)

// ErrInvalidScript is wrapped by every error that Load, LoadFile and Parse
// return for a script that does not validate (see LoadError).
var ErrInvalidScript = errors.New("invalid script")

// ErrExpectationsFailed is wrapped by Report.Err when at least one `expect`
// entry is not met. Commands map it to their documented exit code.
var ErrExpectationsFailed = errors.New("script expectations failed")

// Diagnostic is one problem found while loading a script.
type Diagnostic struct {
	Pos calls.Pos
	// Msg says what is wrong, naming the field path and, where there are
	// any, the names that would have been right.
	Msg string
}

// String formats d as "file:line:col: message".
func (d Diagnostic) String() string { return d.Pos.String() + ": " + d.Msg }

// LoadError lists every problem found in a script, in file order. It wraps
// ErrInvalidScript.
type LoadError struct {
	Diagnostics []Diagnostic
}

// Error prints one diagnostic per line.
func (e *LoadError) Error() string {
	if len(e.Diagnostics) == 1 {
		return "script: " + e.Diagnostics[0].String()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "script: %d errors:", len(e.Diagnostics))
	for _, d := range e.Diagnostics {
		b.WriteString("\n  ")
		b.WriteString(d.String())
	}
	return b.String()
}

// Unwrap returns ErrInvalidScript.
func (e *LoadError) Unwrap() error { return ErrInvalidScript }

// diags collects diagnostics, dropping exact repeats (a rule whose method is
// a glob is checked once per matching method and may find the same problem
// several times).
type diags struct {
	file string
	list []Diagnostic
	seen map[Diagnostic]bool
}

func (d *diags) add(p calls.Pos, format string, args ...any) {
	diag := Diagnostic{Pos: p, Msg: fmt.Sprintf(format, args...)}
	if d.seen == nil {
		d.seen = map[Diagnostic]bool{}
	}
	if d.seen[diag] {
		return
	}
	d.seen[diag] = true
	d.list = append(d.list, diag)
}

func (d *diags) err() error {
	if len(d.list) == 0 {
		return nil
	}
	list := append([]Diagnostic(nil), d.list...)
	sort.SliceStable(list, func(i, j int) bool {
		if list[i].Pos.Line != list[j].Pos.Line {
			return list[i].Pos.Line < list[j].Pos.Line
		}
		return list[i].Pos.Col < list[j].Pos.Col
	})
	return &LoadError{Diagnostics: list}
}
