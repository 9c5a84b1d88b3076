package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/journal"
	"github.com/bcctl/bcctl/internal/proxy"
	"github.com/bcctl/bcctl/internal/words"
)

// proxyPrinter prints what the proxy relays: for people, a line per call
// as it ends (and with -v as it starts), reverse calls and side streams
// indented under the forward call that caused them, and clients as they
// come and go; as JSON, the journal's lines.
type proxyPrinter struct {
	w         io.Writer
	json      bool
	verbosity int
	cs        ColorScheme
}

const proxyTimeFormat = "15:04:05.000"

// connOpened prints a client's arrival.
func (p *proxyPrinter) connOpened(c *proxy.Conn) {
	if p.json {
		return
	}
	fmt.Fprintf(p.w, "%s client %d connected from %s (%s)\n", p.cs.Dim(c.Opened.Local().Format(proxyTimeFormat)), c.ID, addrOrUnknown(c.ClientAddr), proxyKind(c))
}

// connClosed prints a client's departure, with what it did.
func (p *proxyPrinter) connClosed(c *proxy.Conn, by proxy.Side) {
	if p.json {
		return
	}
	now := time.Now()
	what := "left"
	if by == proxy.SideProxy {
		what = "was closed by the proxy"
	}
	fmt.Fprintf(p.w, "%s client %d %s after %s (%d forward, %s, %s)\n", p.cs.Dim(now.Local().Format(proxyTimeFormat)),
		c.ID, what, now.Sub(c.Opened).Round(time.Millisecond), c.Forward.Load(), words.Count(c.Reverse.Load(), "reverse call"), words.Count(c.SideStreams.Load(), "side stream"))
}

// callStarted prints a call as it reaches the proxy (-v).
func (p *proxyPrinter) callStarted(c *proxy.Call) {
	if p.json || p.verbosity < 1 {
		return
	}
	var b strings.Builder
	b.WriteString(p.cs.Dim(c.Start.Local().Format(proxyTimeFormat)))
	b.WriteString(proxyIndent(c.Cause))
	fmt.Fprintf(&b, " #%d %s %s %s started", c.ID, c.Dir, p.cs.Bold(proxy.MethodName(c)), proxyWho(c.Dir, c.Conn))
	if c.Cause != 0 {
		b.WriteString(p.cs.Dim(fmt.Sprintf(" (for #%d)", c.Cause)))
	}
	b.WriteString("\n")
	_, _ = io.WriteString(p.w, b.String())
}

// entry prints a finished call or side stream.
func (p *proxyPrinter) entry(e journal.Entry) {
	if p.json {
		line, err := json.Marshal(e)
		if err != nil {
			return
		}
		_, _ = p.w.Write(append(line, '\n'))
		return
	}
	switch {
	case e.Stream != nil:
		_, _ = io.WriteString(p.w, p.streamText(e))
	case e.Relay == nil:
		_, _ = io.WriteString(p.w, p.madeText(e))
	default:
		_, _ = io.WriteString(p.w, p.callText(e))
	}
}

// madeText renders a call of the proxy's own, which a `call` step of
// --script made, as serve renders those it makes:
//
//	15:04:05.001   #3 reverse gitaly.RefTransaction/StopTransaction to peer 1: OK 0.4ms (made by "stop" at tamper.yaml:6:11, for #2)
//	15:04:05.002   #5 forward acme.Users/Get to the upstream: OK 0.6ms (made by "ask" at tamper.yaml:12:11, for #4)
func (p *proxyPrinter) madeText(e journal.Entry) string {
	who := serveWho(e)
	if e.Dir == journal.DirForward {
		who = "to the upstream"
	}
	sp := servePrinter{verbosity: p.verbosity, cs: p.cs}
	return sp.textAs(e, proxyIndent(e.Cause), who)
}

// onConnectFailed says that the on_connect steps of --script failed for a
// client.
func (p *proxyPrinter) onConnectFailed(peer calls.Peer, err error) {
	if p.json {
		return
	}
	fmt.Fprintf(p.w, "%s backchannel peer %d (%s): %s\n", p.cs.Dim(time.Now().Local().Format(proxyTimeFormat)),
		peer.BackchannelID, peer.Addr, p.cs.Red(err.Error()))
}

// callText renders a call for people:
//
//	15:04:05.001   #2 reverse gitaly.RefTransaction/VoteTransaction to client 1: OK 0.9ms (client 0.7ms, proxy +0.2ms, for #1)
//	15:04:05.002 #1 forward gitaly.OperationService/UserCreateBranch from client 1: OK 2.1ms (upstream 1.6ms, proxy +0.5ms)
func (p *proxyPrinter) callText(e journal.Entry) string {
	var b strings.Builder
	b.WriteString(p.cs.Dim(e.Time.Local().Format(proxyTimeFormat)))
	b.WriteString(proxyIndent(e.Cause))
	dir := "from"
	if e.Dir == journal.DirReverse {
		dir = "to"
	}
	fmt.Fprintf(&b, " #%d %s %s %s client %d: ", e.ID, e.Dir, p.cs.Bold(e.Method), dir, e.Relay.Conn)
	writeEntryOutcome(&b, p.cs, e)
	var notes []string
	callee := "upstream"
	if e.Dir == journal.DirReverse {
		callee = "client"
	}
	if e.Relay.CalleeMS > 0 {
		notes = append(notes, fmt.Sprintf("%s %s, proxy +%s", callee, serveMS(e.Relay.CalleeMS), serveMS(e.Relay.AddedMS)))
	}
	switch {
	case e.Rule != nil && e.Origin == journal.OriginAnswered:
		notes = append(notes, fmt.Sprintf("answered by rule %q at %s", e.Rule.Name, e.Rule.Pos))
	case e.Rule != nil && e.Relay.Changed:
		notes = append(notes, fmt.Sprintf("changed by rule %q at %s", e.Rule.Name, e.Rule.Pos))
	case e.Rule != nil:
		notes = append(notes, fmt.Sprintf("rule %q at %s", e.Rule.Name, e.Rule.Pos))
	}
	switch {
	case e.Rule != nil && e.Relay.EndedBy == "proxy":
	case e.Relay.EndedBy != "" && e.Relay.Gone:
		notes = append(notes, "the "+e.Relay.EndedBy+" went away")
	case e.Relay.EndedBy == "proxy":
		notes = append(notes, "ended by the proxy")
	case e.Relay.EndedBy != "":
		notes = append(notes, "ended by the "+e.Relay.EndedBy)
	}
	if e.Cause != 0 {
		notes = append(notes, fmt.Sprintf("for #%d", e.Cause))
	}
	if len(notes) > 0 {
		b.WriteString(p.cs.Dim(" (" + strings.Join(notes, ", ") + ")"))
	}
	b.WriteString("\n")
	writeEntryDetails(&b, proxyIndent(e.Cause)+"    ", p.verbosity, e)
	return b.String()
}

// streamText renders a side stream for people:
//
//	15:04:05.001   #3 sidechannel stream to client 1: 1.2MB to the client, 14B to the upstream, 2.0ms (closed first by the upstream, for #1)
func (p *proxyPrinter) streamText(e journal.Entry) string {
	s := e.Stream
	var b strings.Builder
	b.WriteString(p.cs.Dim(e.Time.Local().Format(proxyTimeFormat)))
	b.WriteString(proxyIndent(e.Cause))
	fmt.Fprintf(&b, " #%d %s stream to client %d: %s to the client, %s to the upstream, %s", e.ID, s.Kind, s.Conn,
		words.Bytes(s.ToClient), words.Bytes(s.ToUpstream), serveMS(e.DurationMS))
	var notes []string
	if s.Error != "" {
		notes = append(notes, p.cs.Red(s.Error))
	}
	if s.ClosedFirst != "" {
		notes = append(notes, "closed first by the "+s.ClosedFirst)
	}
	if e.Cause != 0 {
		notes = append(notes, fmt.Sprintf("for #%d", e.Cause))
	}
	if len(notes) > 0 {
		b.WriteString(p.cs.Dim(" (" + strings.Join(notes, ", ") + ")"))
	}
	b.WriteString("\n")
	return b.String()
}

// proxyIndent nests what a forward call caused under it.
func proxyIndent(cause uint64) string {
	if cause != 0 {
		return "  "
	}
	return ""
}

// proxyWho says which client a call comes from or goes to.
func proxyWho(dir calls.Direction, c *proxy.Conn) string {
	if dir == calls.Reverse {
		return fmt.Sprintf("to client %d", c.ID)
	}
	return fmt.Sprintf("from client %d", c.ID)
}

// proxyKind describes a client connection's kind.
func proxyKind(c *proxy.Conn) string {
	if c.Kind == proxy.Multiplexed {
		return fmt.Sprintf("multiplexed, backchannel peer %d", c.PeerID)
	}
	return "plain gRPC"
}

func addrOrUnknown(a interface{ String() string }) string {
	if a == nil {
		return "an unknown address"
	}
	return a.String()
}
