package script

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"google.golang.org/grpc/codes"
	"gopkg.in/yaml.v3"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/words"
)

// Expectation is one `expect` entry: how many recorded calls must match
// its filters.
type Expectation struct {
	// Name is the entry's name, or "expect[N]".
	Name string
	// Pos is where the entry is written.
	Pos calls.Pos
	// Method is the method glob ("" for any method).
	Method string
	// Dir is the direction, 0 for either.
	Dir calls.Direction
	// Peer is the backchannel ID to count, when HasPeer.
	Peer    uint64
	HasPeer bool
	// Code is the status code to count, when HasCode.
	Code    codes.Code
	HasCode bool
	// Rule is the name of the rule that must have answered ("" for any).
	Rule string
	// Min and Max bound the count; Max < 0 means no upper bound.
	Min, Max int

	methodRE *regexp.Regexp
}

// matches reports whether rec counts for e.
func (e *Expectation) matches(rec calls.Record) bool {
	if e.Dir != 0 && e.Dir != rec.Dir {
		return false
	}
	if e.methodRE != nil && !e.methodRE.MatchString(rec.Method) {
		return false
	}
	if e.HasPeer && e.Peer != rec.Peer {
		return false
	}
	if e.HasCode && e.Code != rec.Code {
		return false
	}
	if e.Rule != "" && e.Rule != rec.Rule {
		return false
	}
	return true
}

// describe says what the expectation counts, for reports, in the number
// that its bounds end with ("exactly 1 call", "at least 2 calls").
func (e *Expectation) describe() string {
	var parts []string
	if e.Dir != 0 {
		parts = append(parts, e.Dir.String())
	}
	n := e.Min
	if e.Max >= 0 {
		n = e.Max
	}
	parts = append(parts, words.Plural(n, "call", "calls"))
	if e.Method != "" {
		parts = append(parts, "to "+e.Method)
	}
	if e.HasPeer {
		parts = append(parts, "with peer "+strconv.FormatUint(e.Peer, 10))
	}
	if e.HasCode {
		parts = append(parts, "ending "+calls.CodeName(e.Code))
	}
	if e.Rule != "" {
		parts = append(parts, fmt.Sprintf("answered by rule %q", e.Rule))
	}
	return strings.Join(parts, " ")
}

// bounds formats what count is wanted.
func (e *Expectation) bounds() string {
	switch {
	case e.Max >= 0 && e.Min == 0:
		return fmt.Sprintf("at most %d", e.Max)
	case e.Max >= 0 && e.Min == e.Max:
		return fmt.Sprintf("exactly %d", e.Min)
	case e.Max >= 0 && e.Min > 0:
		return fmt.Sprintf("%d to %d", e.Min, e.Max)
	}
	return fmt.Sprintf("at least %d", e.Min)
}

// Result is the outcome of one expectation.
type Result struct {
	Expectation *Expectation
	// Count is how many recorded calls matched.
	Count int
	// OK reports whether Count is within bounds.
	OK bool
}

// String formats the result as one report line.
func (r Result) String() string {
	mark := "ok  "
	if !r.OK {
		mark = "FAIL"
	}
	e := r.Expectation
	return fmt.Sprintf("%s %s (%s): want %s %s, got %d", mark, e.Name, calls.Pos{File: e.Pos.File, Line: e.Pos.Line}, e.bounds(), e.describe(), r.Count)
}

// Report is the outcome of checking every expectation.
type Report struct {
	Results []Result
}

// OK reports whether every expectation was met.
func (r *Report) OK() bool {
	for _, res := range r.Results {
		if !res.OK {
			return false
		}
	}
	return true
}

// Failed returns the results that were not met.
func (r *Report) Failed() []Result {
	var out []Result
	for _, res := range r.Results {
		if !res.OK {
			out = append(out, res)
		}
	}
	return out
}

// String is the human report: a summary line, then one line per
// expectation.
func (r *Report) String() string {
	var b strings.Builder
	failed := len(r.Failed())
	if failed == 0 {
		fmt.Fprintf(&b, "expectations: all %d met", len(r.Results))
	} else {
		fmt.Fprintf(&b, "expectations: %d of %d failed", failed, len(r.Results))
	}
	for _, res := range r.Results {
		b.WriteString("\n  ")
		b.WriteString(res.String())
	}
	return b.String()
}

// Err returns nil when every expectation was met, else an error that wraps
// ErrExpectationsFailed and carries the report.
func (r *Report) Err() error {
	if r.OK() {
		return nil
	}
	return &ExpectationError{Report: r}
}

// ExpectationError is the error of a failed Report. It wraps
// ErrExpectationsFailed.
type ExpectationError struct {
	Report *Report
}

// Error returns the report.
func (e *ExpectationError) Error() string { return e.Report.String() }

// Unwrap returns ErrExpectationsFailed.
func (e *ExpectationError) Unwrap() error { return ErrExpectationsFailed }

// Check checks the script's expectations against records (for example a
// journal read back).
func (s *Script) Check(records []calls.Record) *Report {
	t := newTally()
	for _, rec := range records {
		t.add(rec)
	}
	return t.check(s.Expectations)
}

// tally counts records by their distinct values, so that expectations can
// be checked at any time (even after a reload changed them) without
// keeping every call.
type tally struct {
	mu     sync.Mutex
	counts map[calls.Record]int
}

func newTally() *tally { return &tally{counts: map[calls.Record]int{}} }

func (t *tally) add(rec calls.Record) {
	t.mu.Lock()
	t.counts[rec]++
	t.mu.Unlock()
}

func (t *tally) check(exps []*Expectation) *Report {
	t.mu.Lock()
	defer t.mu.Unlock()
	rep := &Report{}
	for _, e := range exps {
		n := 0
		for rec, c := range t.counts {
			if e.matches(rec) {
				n += c
			}
		}
		ok := n >= e.Min && (e.Max < 0 || n <= e.Max)
		rep.Results = append(rep.Results, Result{Expectation: e, Count: n, OK: ok})
	}
	return rep
}

// Keys of an expect entry.
var expectKeys = []string{"name", "method", "dir", "min", "max", "count", "peer", "code", "rule"}

func (l *loader) expectations(n *yaml.Node, s *Script) []*Expectation {
	n = deref(n)
	if n == nil || isNull(n) {
		return nil
	}
	d := l.d
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, "expect must be a list, not %s", describeNode(n))
		return nil
	}
	ruleNames := map[string]bool{}
	var allNames []string
	for _, r := range append(append([]*Rule(nil), s.Rules...), s.Backchannel...) {
		ruleNames[r.Name] = true
		allNames = append(allNames, r.Name)
	}
	sort.Strings(allNames)
	var out []*Expectation
	for i, en := range n.Content {
		at := fmt.Sprintf("expect[%d]", i)
		ps, ok := d.pairs(en, at)
		if !ok {
			continue
		}
		d.checkKeys(ps, at, expectKeys...)
		e := &Expectation{Name: at, Pos: d.pos(deref(en)), Max: -1}
		var minSet, maxSet, countSet bool
		var methodNode *yaml.Node
		for _, p := range ps {
			switch p.key {
			case "name":
				if v, ok := d.scalarString(p.val, at+".name"); ok {
					e.Name = v
				}
			case "method":
				if v, ok := d.scalarString(p.val, at+".method"); ok {
					e.Method = normalizeMethod(v)
					methodNode = deref(p.val)
				}
			case "dir":
				v, ok := d.scalarString(p.val, at+".dir")
				switch {
				case !ok:
				case v == "forward":
					e.Dir = calls.Forward
				case v == "reverse":
					e.Dir = calls.Reverse
				default:
					d.errorf(deref(p.val), "%s.dir must be forward or reverse, not %q", at, v)
				}
			case "min":
				e.Min, minSet = d.scalarInt(p.val, at+".min")
			case "max":
				e.Max, maxSet = d.scalarInt(p.val, at+".max")
				if !maxSet {
					e.Max = -1
				}
			case "count":
				var c int
				if c, countSet = d.scalarInt(p.val, at+".count"); countSet {
					e.Min, e.Max = c, c
				}
			case "peer":
				v := deref(p.val)
				id, err := strconv.ParseUint(orNode(v).Value, 10, 64)
				if v == nil || v.Kind != yaml.ScalarNode || err != nil {
					d.errorf(orNode(v), "%s.peer must be a backchannel ID (a number), not %s", at, describeNode(v))
					continue
				}
				e.Peer, e.HasPeer = id, true
			case "code":
				e.Code, e.HasCode = d.code(p.val, at+".code")
			case "rule":
				if v, ok := d.scalarString(p.val, at+".rule"); ok {
					if !ruleNames[v] {
						d.errorf(deref(p.val), "%s.rule: no rule is named %q%s", at, v, words.DidYouMean(v, allNames))
					}
					e.Rule = v
				}
			}
		}
		if countSet && (minSet || maxSet) {
			d.errorf(deref(en), "%s: give count, or min and/or max, not both", at)
		}
		if !countSet && !minSet && !maxSet {
			e.Min = 1
		}
		if maxSet && e.Max < e.Min {
			d.errorf(deref(en), "%s: max %d is below min %d", at, e.Max, e.Min)
		}
		if e.Method != "" {
			re, err := compileGlob(e.Method, true)
			if err != nil {
				d.errorf(methodNode, "%s.method: %v", at, err)
			} else {
				e.methodRE = re
				l.checkExpectMethod(methodNode, e, at)
			}
		}
		out = append(out, e)
	}
	return out
}

// checkExpectMethod reports a method pattern that names nothing in the
// schema of the expectation's direction.
func (l *loader) checkExpectMethod(n *yaml.Node, e *Expectation, at string) {
	cats := []*catalog{l.upstream, l.backchannel}
	switch e.Dir {
	case calls.Forward:
		cats = cats[:1]
	case calls.Reverse:
		cats = cats[1:]
	}
	var firstErr error
	for _, c := range cats {
		if _, err := c.resolve(e.Method); err == nil {
			return
		} else if firstErr == nil {
			firstErr = err
		}
	}
	d := l.d
	d.errorf(n, "%s.method: %v", at, firstErr)
}
