package tui

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"google.golang.org/grpc/metadata"

	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/tui/answer"
	"github.com/bcctl/bcctl/internal/tui/msgview"
	"github.com/bcctl/bcctl/internal/words"
)

// detailSections describe a call for the detail view, what a person
// needs first on top: who called and when, the request, the metadata
// (transport headers folded), and while it is pending which script rule
// would answer it.
func (m AnswerModel) detailSections(cv *callView) []msgview.Section {
	c := cv.call
	types := m.cfg.Resolver
	from := "from " + c.Peer.Addr
	if c.Peer.Addr == "" {
		from = "from the upstream"
	}
	out := []msgview.Section{{
		Title: dynamic.MethodName(c.Method),
		Body:  fmt.Sprintf("%s at %s, %s", from, c.Arrived.Format("15:04:05"), deadlineText(c)),
		Tone:  "muted",
	}}
	switch {
	case len(cv.requests) == 0 && !cv.halfClosed:
		out = append(out, msgview.Section{Title: "Request", Body: "waiting for the first message…", Tone: "muted"})
	case len(cv.requests) == 0:
		out = append(out, msgview.Section{Title: "Request", Body: "the caller sent no message", Tone: "muted"})
	}
	for i, req := range cv.requests {
		title := "Request"
		if c.ClientStreams() {
			title = fmt.Sprintf("Request %d", i+1)
		}
		out = append(out, msgview.Section{Title: title, Body: msgview.JSON(req, types, m.cfg.Bytes)})
	}
	if c.ClientStreams() && cv.halfClosed && len(cv.requests) > 0 {
		out = append(out, msgview.Section{Body: "the caller has finished sending", Tone: "muted"})
	}
	if cv.state.Open() {
		// A stream's messages sent so far; once the call is over they show
		// in its outcome.
		out = append(out, m.sentSections(cv)...)
	}
	out = append(out, m.metadataSections(c.Metadata)...)
	if cv.state.Open() {
		out = append(out, m.scriptSection(cv)...)
	}
	return out
}

// metadataSections show the call's metadata; the transport headers only
// when asked for (t), else a line saying they are there.
func (m AnswerModel) metadataSections(md metadata.MD) []msgview.Section {
	app, transport := metadata.MD{}, metadata.MD{}
	for k, v := range md {
		if isTransportHeader(k) {
			transport[k] = v
		} else {
			app[k] = v
		}
	}
	out := []msgview.Section{{Title: "Metadata", Body: msgview.Metadata(app)}}
	if len(transport) == 0 {
		return out
	}
	names := slices.Sorted(maps.Keys(transport))
	key := m.keys.Transport.Help().Key
	if !m.transport {
		return append(out, msgview.Section{Tone: "muted",
			Body: fmt.Sprintf("%d transport %s hidden (%s): %s shows them", len(names), words.Plural(len(names), "header", "headers"), strings.Join(names, ", "), key)})
	}
	return append(out, msgview.Section{Title: "Transport headers (" + key + " hides them)", Body: msgview.Metadata(transport), Tone: "muted"})
}

// isTransportHeader reports the metadata that gRPC and HTTP/2 add on
// their own, which a person answering rarely needs.
func isTransportHeader(name string) bool {
	return strings.HasPrefix(name, ":") || strings.HasPrefix(name, "grpc-") ||
		name == "content-type" || name == "user-agent" || name == "te"
}

// scriptSection says which script rule would answer a pending call.
func (m AnswerModel) scriptSection(cv *callView) []msgview.Section {
	switch {
	case !m.cfg.Responder.HasScript():
		return []msgview.Section{{Title: "Script", Body: "no script loaded", Tone: "muted"}}
	case cv.match == nil:
		return nil
	case cv.match.Rule != "":
		return []msgview.Section{{Title: "Script", Body: "rule " + cv.match.Rule + " would answer"}}
	}
	return []msgview.Section{{Title: "Script", Body: "no rule would answer: " + cv.match.Reason, Tone: "muted"}}
}

// sentSections are the responses sent on a call.
func (m AnswerModel) sentSections(cv *callView) []msgview.Section {
	var out []msgview.Section
	for i, s := range cv.sent {
		title := fmt.Sprintf("Reply sent by %s", s.by)
		if cv.call.ServerStreams() {
			title = fmt.Sprintf("Sent %d by %s", i+1, s.by)
		}
		out = append(out, msgview.Section{Title: title, Body: msgview.JSON(s.msg, m.cfg.Resolver, m.cfg.Bytes)})
	}
	return out
}

// outcomeSections say how a call that is no longer pending stands: who is
// answering it or what was sent, and the status it ended with.
func (m AnswerModel) outcomeSections(cv *callView) []msgview.Section {
	if cv.state.Open() {
		return nil
	}
	var out []msgview.Section
	if cv.state == answer.Delegated {
		body := "the script is answering…"
		if cv.match != nil && cv.match.Rule != "" {
			body = "rule " + cv.match.Rule + " is answering…"
		}
		out = append(out, msgview.Section{Title: "Script", Body: body, Tone: "muted"})
	}
	out = append(out, m.sentSections(cv)...)
	e := cv.ended
	if e == nil {
		return out
	}
	out = append(out, msgview.Section{Title: "Ended: " + endedBy(e.State), Body: msgview.Status(e.Status, m.cfg.Resolver), Tone: msgview.StatusTone(e.Status)})
	if len(e.Header) > 0 {
		out = append(out, msgview.Section{Title: "Headers sent", Body: msgview.Metadata(e.Header)})
	}
	if len(e.Trailer) > 0 {
		out = append(out, msgview.Section{Title: "Trailers sent", Body: msgview.Metadata(e.Trailer)})
	}
	return out
}

// endedBy says how a call ended, for the outcome's title.
func endedBy(s answer.State) string {
	switch s {
	case answer.Answered:
		return "answered by you"
	case answer.Scripted:
		return "answered by the script"
	}
	return s.String()
}

// outcomeTitle is the lower pane's title once the call is not pending.
func outcomeTitle(cv *callView) string {
	if cv.ended == nil {
		return fmt.Sprintf("Call #%d · %s", cv.call.ID, cv.state)
	}
	return fmt.Sprintf("Outcome of call #%d · %s", cv.call.ID, endedBy(cv.ended.State))
}

func deadlineText(c *answer.Call) string {
	if c.Deadline.IsZero() {
		return "no deadline"
	}
	return "deadline " + c.Deadline.Format("15:04:05")
}
