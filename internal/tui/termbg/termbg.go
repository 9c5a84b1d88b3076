// Package termbg decides whether the terminal's background is dark without
// asking the terminal.
//
// bubbletea v1 asks in its init function, before main: lipgloss's default
// renderer sends an OSC 11 query (and a cursor position report) to stdout
// and waits up to termenv's OSCTimeout, 5 seconds, for the answer. A
// pseudo-terminal that never answers (script(1), some CI runners) made
// every bcctl command, even `bcctl peers` with NO_COLOR, stall that long.
//
// Importing termbg stops the query: its init sets the default renderer's
// background explicitly, from $COLORFGBG when the terminal exports it, else
// dark (what termenv assumes when a query goes unanswered). It runs before
// bubbletea's init because packages are initialised in the order of their
// import paths once their imports are (the Go specification, "Package
// initialization"): termbg imports nothing that lipgloss does not, and
// github.com/bcctl sorts before github.com/charmbracelet. Keep it so: this
// package must import nothing else, and must keep a path that sorts before
// bubbletea's.
package termbg

import (
	"os"
	"strconv"
	"strings"

	"github.com/charmbracelet/lipgloss"
)

func init() {
	lipgloss.SetHasDarkBackground(Dark(os.Getenv))
}

// Dark reports whether the terminal's background is dark, by $COLORFGBG
// ("15;0": foreground 15 on background 0, as rxvt and Konsole export it;
// getenv nil means os.Getenv), and true when that does not tell.
func Dark(getenv func(string) string) bool {
	if getenv == nil {
		getenv = os.Getenv
	}
	fields := strings.Split(getenv("COLORFGBG"), ";")
	bg, err := strconv.Atoi(fields[len(fields)-1])
	if err != nil || bg < 0 || bg > 15 {
		return true
	}
	// ANSI colors 0-6 and 8 are dark; 7 (white) and 9-15 are light.
	return bg < 7 || bg == 8
}
