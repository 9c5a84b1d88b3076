package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/bcctl/bcctl/internal/journal"
	"github.com/bcctl/bcctl/internal/serve"
)

// servePrinter prints what happens in a serve: each call as it ends, and
// (in text) peers as they come and go. JSON output is the journal's lines.
type servePrinter struct {
	w         io.Writer
	json      bool
	verbosity int
	cs        ColorScheme
}

// event prints one finished call.
func (p *servePrinter) event(ev *serve.Event) {
	e := ev.Entry()
	if p.json {
		line, err := json.Marshal(e)
		if err != nil {
			return
		}
		_, _ = p.w.Write(append(line, '\n'))
		return
	}
	_, _ = io.WriteString(p.w, p.text(e))
}

// text renders a call for people:
//
//	15:04:05.000 #2 reverse gitaly.RefTransaction/VoteTransaction to peer 1: OK 0.9ms (made by "vote" at vote.yaml:9:11 for #1)
//	15:04:05.001 #1 forward gitaly.OperationService/UserCreateBranch from peer 1: OK 1.4ms (rule "vote" at vote.yaml:3:5)
func (p *servePrinter) text(e journal.Entry) string { return p.textAs(e, "", serveWho(e)) }

// textAs is text with the call indented by indent after its time (bcctl
// proxy nests the calls a forward call caused under it), and who for
// whom the call came from or went to.
func (p *servePrinter) textAs(e journal.Entry, indent, who string) string {
	var b strings.Builder
	b.WriteString(p.cs.Dim(e.Time.Local().Format("15:04:05.000")))
	b.WriteString(indent)
	fmt.Fprintf(&b, " #%d %s %s %s", e.ID, e.Dir, p.cs.Bold(e.Method), who)
	b.WriteString(": ")
	writeEntryOutcome(&b, p.cs, e)
	var notes []string
	switch {
	case e.Origin == journal.OriginMade && e.Rule != nil:
		notes = append(notes, fmt.Sprintf("made by %q at %s", e.Rule.Name, e.Step))
	case e.Origin == journal.OriginMade && e.Step != "":
		notes = append(notes, "made by on_connect at "+e.Step)
	case e.Origin == journal.OriginMade && e.By != "":
		notes = append(notes, "made by "+e.By)
	case e.Rule != nil:
		notes = append(notes, fmt.Sprintf("rule %q at %s", e.Rule.Name, e.Rule.Pos))
	case e.Origin == journal.OriginAnswered && (e.Status == nil || e.Status.Code == "UNIMPLEMENTED"):
		notes = append(notes, "no rule")
	}
	if e.Cause != 0 {
		notes = append(notes, fmt.Sprintf("for #%d", e.Cause))
	}
	if len(notes) > 0 {
		b.WriteString(p.cs.Dim(" (" + strings.Join(notes, ", ") + ")"))
	}
	b.WriteString("\n")
	writeEntryDetails(&b, indent+"    ", p.verbosity, e)
	return b.String()
}

// writeEntryOutcome writes a call's status code (green when OK, red
// otherwise), its message and its duration: `OK 1.4ms`.
func writeEntryOutcome(b *strings.Builder, cs ColorScheme, e journal.Entry) {
	code, msg := "OK", ""
	if e.Status != nil {
		code, msg = e.Status.Code, e.Status.Message
	}
	if code == "OK" {
		b.WriteString(cs.Green(code))
	} else {
		b.WriteString(cs.Red(code))
	}
	if msg != "" {
		fmt.Fprintf(b, " %q", msg)
	}
	fmt.Fprintf(b, " %s", serveMS(e.DurationMS))
}

// writeEntryDetails writes the lines under a call that -v (messages) and
// -vv (metadata, header and trailer as well) ask for, each after indent.
// A relayed call whose messages were not all kept says how many were.
func writeEntryDetails(b *strings.Builder, indent string, verbosity int, e journal.Entry) {
	if verbosity >= 2 && len(e.Metadata) > 0 {
		fmt.Fprintf(b, "%smetadata: %s\n", indent, serveCompactJSON(e.Metadata))
	}
	if verbosity >= 1 {
		for _, r := range e.Requests {
			fmt.Fprintf(b, "%srequest:  %s\n", indent, r)
		}
		for _, r := range e.Responses {
			fmt.Fprintf(b, "%sresponse: %s\n", indent, r)
		}
		if e.Relay != nil {
			all := e.Relay.RequestCount + e.Relay.ResponseCount
			if kept := len(e.Requests) + len(e.Responses); kept < all {
				fmt.Fprintf(b, "%s(%d of %d messages kept)\n", indent, kept, all)
			}
		}
	}
	if verbosity >= 2 {
		if len(e.Header) > 0 {
			fmt.Fprintf(b, "%sheader:   %s\n", indent, serveCompactJSON(e.Header))
		}
		if len(e.Trailer) > 0 {
			fmt.Fprintf(b, "%strailer:  %s\n", indent, serveCompactJSON(e.Trailer))
		}
	}
}

// serveWho says who called or was called: "from peer 1", "to peer 2",
// "from 127.0.0.1:5555" (a plain client). A proxy's peer is its client,
// which makes the forward calls and is called by the reverse ones.
func serveWho(e journal.Entry) string {
	dir := "from"
	if e.Origin == journal.OriginMade || (e.Relay != nil && e.Dir == journal.DirReverse) {
		dir = "to"
	}
	switch {
	case e.Peer == nil:
		return dir + " an unknown peer"
	case e.Peer.ID != 0:
		return fmt.Sprintf("%s peer %d", dir, e.Peer.ID)
	}
	return dir + " " + e.Peer.Addr + " (plain)"
}

// peer prints a change of the registry.
func (p *servePrinter) peer(c serve.PeerChange) {
	at := p.cs.Dim(c.At.Local().Format("15:04:05.000"))
	var line string
	switch c.Kind {
	case serve.PeerJoined:
		line = fmt.Sprintf("%s peer %d joined from %s", at, c.Peer.ID, c.Peer.RemoteAddr)
	case serve.PeerLeft:
		line = fmt.Sprintf("%s peer %d left after %s (%d forward, %d reverse calls)", at, c.Peer.ID,
			c.At.Sub(c.Peer.ConnectedAt).Round(time.Millisecond), c.Peer.ForwardCalls, c.Peer.ReverseCalls)
	case serve.PeerUpdated:
		switch {
		case c.Peer.OnConnectError != "":
			line = fmt.Sprintf("%s peer %d: %s", at, c.Peer.ID, p.cs.Red("on_connect failed: "+c.Peer.OnConnectError))
		case c.Peer.Discovery == serve.DiscoveryDone:
			line = fmt.Sprintf("%s peer %d offers %s", at, c.Peer.ID, strings.Join(c.Peer.Services, ", "))
		case c.Peer.Discovery == serve.DiscoveryNotServed:
			line = fmt.Sprintf("%s peer %d serves no reflection on its backchannel", at, c.Peer.ID)
		case c.Peer.Discovery == serve.DiscoveryFailed:
			line = fmt.Sprintf("%s peer %d: listing its services failed: %s", at, c.Peer.ID, c.Peer.DiscoveryError)
		default:
			return
		}
	default:
		return
	}
	_, _ = io.WriteString(p.w, line+"\n")
}

func serveMS(ms float64) string {
	switch {
	case ms >= 1000:
		return fmt.Sprintf("%.2fs", ms/1000)
	case ms >= 10:
		return fmt.Sprintf("%.0fms", ms)
	}
	return fmt.Sprintf("%.1fms", ms)
}

func serveCompactJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
