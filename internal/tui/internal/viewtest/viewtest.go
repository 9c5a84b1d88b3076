// Package viewtest checks the views of the TUI's components in their unit
// tests: a view is exactly the size it was given, and matches its golden
// file (testdata/<Test>/<subtest>.golden; -update rewrites them).
package viewtest

import (
	"strings"
	"testing"

	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/golden"
)

// RequireSize fails t unless view, without its ANSI sequences, is exactly
// width × height cells.
func RequireSize(t testing.TB, view string, width, height int) {
	t.Helper()
	lines := strings.Split(ansi.Strip(view), "\n")
	if len(lines) != height {
		t.Fatalf("view has %d lines, want %d:\n%s", len(lines), height, ansi.Strip(view))
	}
	for i, l := range lines {
		if w := ansi.StringWidth(l); w != width {
			t.Errorf("line %d is %d cells wide, want %d: %q", i+1, w, width, l)
		}
	}
}

// RequireGolden checks view's size, then compares it, without its ANSI
// sequences, with t's golden file.
func RequireGolden(t testing.TB, view string, width, height int) {
	t.Helper()
	RequireSize(t, view, width, height)
	golden.RequireEqual(t, []byte(ansi.Strip(view)))
}
