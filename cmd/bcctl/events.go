package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/bcctl/bcctl/internal/journal"
)

// entryPrinter prints the calls of a session as they end, from their
// journal entries: for people (one heading line, then the messages), or as
// JSON lines in the journal's format for programs.
type entryPrinter struct {
	w io.Writer
	// jsonLines prints each entry as one JSON line.
	jsonLines bool
	// verbosity 2 adds metadata, headers, trailers and peers.
	verbosity int
	// clock starts each heading with the time of day (connect).
	clock bool
	cs    ColorScheme
	// skipCLI leaves out bcctl call's own forward call, which the
	// PrintingHandler already shows.
	skipCLI bool
	// emitDefaults shows the fields at their default value (--emit-defaults).
	emitDefaults bool
}

// print prints one entry; use it as the journal's Tap.
func (p *entryPrinter) print(e journal.Entry) {
	if p.skipCLI && e.By == journal.ByCLI && e.Origin == journal.OriginMade {
		return
	}
	if p.emitDefaults {
		e = e.WithDefaults()
	}
	if p.jsonLines {
		line, err := json.Marshal(e)
		if err != nil {
			return
		}
		_, _ = p.w.Write(append(line, '\n'))
		return
	}
	_, _ = io.WriteString(p.w, p.human(e))
}

// human renders e for people:
//
//	reverse call gitaly.RefTransaction/VoteTransaction: OK (1.2ms, rule "vote" at vote.yaml:3:5)
//	  request:  {"transaction_id":"7"}
//	  response: {"state":"COMMIT"}
func (p *entryPrinter) human(e journal.Entry) string {
	var b strings.Builder
	if !p.jsonLines && !p.clock {
		b.WriteString("\n")
	}
	if p.clock {
		b.WriteString(p.cs.Dim(e.Time.Local().Format("15:04:05.000")) + " ")
	}
	fmt.Fprintf(&b, "%s call %s", e.Dir, p.cs.Bold(e.Method))
	code, msg := "", ""
	if e.Status != nil {
		code, msg = e.Status.Code, e.Status.Message
	}
	if code == "OK" {
		code = p.cs.Green(code)
	} else {
		code = p.cs.Red(code)
	}
	fmt.Fprintf(&b, ": %s", code)
	if msg != "" {
		fmt.Fprintf(&b, ": %s", msg)
	}
	var notes []string
	notes = append(notes, formatMS(e.DurationMS))
	switch {
	case e.Origin == journal.OriginMade && e.Rule != nil:
		notes = append(notes, fmt.Sprintf("made by rule %q at %s", e.Rule.Name, e.Step))
	case e.Rule != nil:
		notes = append(notes, fmt.Sprintf("rule %q at %s", e.Rule.Name, e.Rule.Pos))
	case e.By == journal.ByTUI:
		notes = append(notes, "answered by hand")
	}
	if e.Cause != 0 {
		notes = append(notes, fmt.Sprintf("during call #%d", e.Cause))
	}
	fmt.Fprintf(&b, " %s\n", p.cs.Dim("("+strings.Join(notes, ", ")+")"))
	if p.verbosity > 1 {
		if e.Peer != nil {
			peer := e.Peer.Addr
			if e.Peer.ID != 0 {
				peer = fmt.Sprintf("%d %s", e.Peer.ID, peer)
			}
			fmt.Fprintf(&b, "  peer:      %s\n", peer)
		}
		writeMD(&b, "metadata: ", e.Metadata)
	}
	defaultedReqs, defaultedResps := e.Defaulted()
	for i, m := range e.Requests {
		fmt.Fprintf(&b, "  request:   %s%s\n", m, p.defaulted(defaultedReqs, i))
	}
	if p.verbosity > 1 {
		writeMD(&b, "header:   ", e.Header)
	}
	for i, m := range e.Responses {
		fmt.Fprintf(&b, "  response:  %s%s\n", m, p.defaulted(defaultedResps, i))
	}
	if e.Status != nil {
		for _, d := range e.Status.Details {
			fmt.Fprintf(&b, "  detail:    %s\n", d)
		}
	}
	if p.verbosity > 1 {
		writeMD(&b, "trailer:  ", e.Trailer)
	}
	return b.String()
}

// defaulted notes the fields of message i that hold their default value
// (left out of the line, or with --emit-defaults shown though nobody set
// them): "  (default: state)", or "" when there are none.
func (p *entryPrinter) defaulted(fields [][]string, i int) string {
	if i >= len(fields) || len(fields[i]) == 0 {
		return ""
	}
	names := fields[i]
	const show = 6
	list := strings.Join(names[:min(len(names), show)], ", ")
	if len(names) > show {
		list += fmt.Sprintf(" and %d more", len(names)-show)
	}
	return "  " + p.cs.Dim("(default: "+list+")")
}

func writeMD(b *strings.Builder, label string, md map[string][]string) {
	if len(md) == 0 {
		return
	}
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range md[k] {
			fmt.Fprintf(b, "  %s %s: %s\n", label, k, v)
		}
	}
}

// formatMS shows a duration in milliseconds with sensible precision.
func formatMS(ms float64) string {
	switch {
	case ms < 10:
		return fmt.Sprintf("%.2fms", ms)
	case ms < 1000:
		return fmt.Sprintf("%.1fms", ms)
	default:
		return fmt.Sprintf("%.2fs", ms/1000)
	}
}
