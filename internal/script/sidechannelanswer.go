package script

import (
	"fmt"
	"io"
	"regexp"

	"gopkg.in/yaml.v3"

	"github.com/bcctl/bcctl/internal/calls"
)

// Faults a sidechannel answer can inject (the client's end).
const (
	// FaultNeverAck takes the sidechannel and never acknowledges it: the
	// server gives up after its handshake timeout.
	FaultNeverAck = "never-ack"
	// FaultBadFraming acknowledges, then sends a body whose framing is
	// broken.
	FaultBadFraming = "bad-framing"
	// FaultCloseEarly acknowledges, then closes without ending the body.
	FaultCloseEarly = "close-early"
)

var answerFaults = []string{FaultNeverAck, FaultBadFraming, FaultCloseEarly}

// Keys of a sidechannel answer and of its match.
var (
	sidechannelAnswerKeys = []string{"name", "match", "send", "send_file", "send_size", "expect", "fault"}
	sidechannelMatchKeys  = []string{"method"}
)

// SidechannelAnswer is an entry of a script's `sidechannel` section: how
// bcctl call answers the sidechannel of a forward call it makes (the body
// it sends, what it expects back, or a fault).
type SidechannelAnswer struct {
	// Name is the entry's name, or "sidechannel[0]".
	Name string
	// Pos is where the entry starts.
	Pos calls.Pos
	// Fault is the fault to inject ("" for none): FaultNeverAck,
	// FaultBadFraming or FaultCloseEarly.
	Fault string

	methodRE *regexp.Regexp
	send     *sidechannelPayload
	expect   matcher
	vars     map[string]any
}

// SidechannelAnswer returns the first entry of the script's sidechannel
// section whose method matches method ("pkg.Service/Method"), or nil.
func (s *Script) SidechannelAnswer(method string) *SidechannelAnswer {
	for _, a := range s.sidechannels {
		if a.methodRE.MatchString(method) {
			return a
		}
	}
	return nil
}

// HasBody reports whether the entry gives a body (send, send_file or
// send_size).
func (a *SidechannelAnswer) HasBody() bool { return a.send != nil }

// WriteBody writes the entry's body to w; env looks up ${env.NAME}.
func (a *SidechannelAnswer) WriteBody(w io.Writer, env func(string) string) error {
	sc := &scope{vars: a.vars, caps: map[string]any{}, env: env}
	if err := a.send.writeTo(w, sc); err != nil {
		return fmt.Errorf("sidechannel %q (%s): send: %w", a.Name, a.Pos, err)
	}
	return nil
}

// ErrSidechannelExpectation is wrapped by Check's error; it wraps
// ErrExpectationsFailed, so that bcctl exits as for any unmet expectation.
var ErrSidechannelExpectation = fmt.Errorf("a sidechannel's response is not what the script expects: %w", ErrExpectationsFailed)

// Check matches the response against the entry's expect; the error says
// how it missed.
func (a *SidechannelAnswer) Check(response *StreamData) error {
	if a.expect == nil {
		return nil
	}
	if ok, why := a.expect.match(response.json(), true); !ok {
		return fmt.Errorf("sidechannel %q (%s): %s: %w", a.Name, a.Pos, why, ErrSidechannelExpectation)
	}
	return nil
}

// sidechannelAnswers compiles the sidechannel section.
func (l *loader) sidechannelAnswers(n *yaml.Node) []*SidechannelAnswer {
	d := l.d
	n = deref(n)
	if n == nil || isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, "sidechannel must be a list of answers, not %s", describeNode(n))
		return nil
	}
	var out []*SidechannelAnswer
	for i, an := range n.Content {
		if a := l.sidechannelAnswer(deref(an), i); a != nil {
			out = append(out, a)
		}
	}
	return out
}

func (l *loader) sidechannelAnswer(n *yaml.Node, idx int) *SidechannelAnswer {
	d := l.d
	at := fmt.Sprintf("sidechannel[%d]", idx)
	ps, ok := d.pairs(n, at)
	if !ok {
		return nil
	}
	d.checkKeys(ps, at, sidechannelAnswerKeys...)
	get := func(k string) *yaml.Node {
		for _, p := range ps {
			if p.key == k {
				return p.val
			}
		}
		return nil
	}
	a := &SidechannelAnswer{Name: at, Pos: d.pos(n), vars: l.vars}
	if nn := get("name"); nn != nil {
		if name, ok := d.scalarString(nn, at+".name"); ok && name != "" {
			a.Name = name
		}
	}
	mn := get("match")
	if mn == nil {
		d.errorf(n, "%s needs match with a method (the forward call bcctl makes)", at)
		return nil
	}
	mps, ok := d.pairs(mn, at+".match")
	if !ok {
		return nil
	}
	d.checkKeys(mps, at+".match", sidechannelMatchKeys...)
	var methodNode *yaml.Node
	for _, p := range mps {
		if p.key == "method" {
			methodNode = p.val
		}
	}
	if methodNode == nil {
		d.errorf(deref(mn), "%s.match needs a method", at)
		return nil
	}
	pattern, ok := d.scalarString(methodNode, at+".match.method")
	if !ok {
		return nil
	}
	re, err := compileGlob(normalizeMethod(pattern), true)
	if err == nil {
		_, err = l.upstream.resolve(pattern)
	}
	if err != nil {
		d.errorf(deref(methodNode), "%s.match.method: %v", at, err)
		return nil
	}
	a.methodRE = re
	if fn := get("fault"); fn != nil {
		a.Fault = l.fault(fn, at+".fault", answerFaults)
	}
	a.send = l.sidechannelPayload(get, "send", &tenv{vars: l.vars}, at)
	if en := get("expect"); en != nil {
		a.expect = l.sidechannelExpect(en, at+".expect", "response")
	}
	if a.Fault != "" && (a.send != nil || a.expect != nil) {
		d.errorf(n, "%s: fault %s sends no body and gets no response: leave out send and expect", at, a.Fault)
	}
	return a
}
