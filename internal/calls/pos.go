package calls

import (
	"fmt"
	"strconv"
)

// Pos is a place in a script file. Line and Col are 1-based; both are 0 when
// unknown.
type Pos struct {
	File string
	Line int
	Col  int
}

// String formats p as "file:line:col", leaving out the parts that are unknown.
func (p Pos) String() string {
	switch {
	case p.Line == 0:
		return p.File
	case p.Col == 0:
		return p.File + ":" + strconv.Itoa(p.Line)
	default:
		// Not fmt: every journal entry names its rule's position.
		return p.File + ":" + strconv.Itoa(p.Line) + ":" + strconv.Itoa(p.Col)
	}
}

// MarshalText writes p as "file:line:col" (so JSON journals carry it as a
// string).
func (p Pos) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// RuleRef identifies a script rule in events and journals.
type RuleRef struct {
	// Name is the rule's name ("" when no rule is meant).
	Name string `json:"name"`
	// Pos is where the rule starts in its script.
	Pos Pos `json:"at"`
}

// IsZero reports a RuleRef that names no rule.
func (r RuleRef) IsZero() bool { return r.Name == "" }

// String formats the reference as `"name" (file:line)`, or "no rule".
func (r RuleRef) String() string {
	if r.IsZero() {
		return "no rule"
	}
	return fmt.Sprintf("%q (%s)", r.Name, Pos{File: r.Pos.File, Line: r.Pos.Line})
}
