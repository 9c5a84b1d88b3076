package recording

import (
	"fmt"
	"sort"
	"strconv"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"gopkg.in/yaml.v3"

	"github.com/bcctl/bcctl/internal/calls"
)

// rule writes one planned rule.
func (w *writer) rule(r planned, forward bool) *yaml.Node {
	c := r.c
	out := mapping()
	addPair(out, "name", scalar("!!str", w.name(c)))
	match := mapping()
	addPair(match, "method", scalar("!!str", c.Method))
	if len(r.match) > 0 && len(c.Requests) > 0 {
		req := mapping()
		m := c.Requests[0].ProtoReflect()
		for _, fd := range r.match {
			addPair(req, string(fd.Name()), w.v.single(fd, m.Get(fd)))
		}
		req.Style = yaml.FlowStyle
		addPair(match, "request", req)
	}
	match.Style = yaml.FlowStyle
	addPair(out, "match", match)
	if r.times > 0 {
		addPair(out, "times", scalar("!!int", strconv.Itoa(r.times)))
	}
	if h := userMetadata(c.Header); len(h) > 0 {
		addPair(out, "headers", mdNode(h))
	}
	notes := []string{fmt.Sprintf("%s: %s", c.Dir, recordedCalls(r.calls))}
	if forward {
		steps, left := w.callSteps(c)
		if len(steps.Content) > 0 {
			addPair(out, "do", steps)
		}
		notes = append(notes, left...)
	}
	w.final(out, c)
	if t := userMetadata(c.Trailer); len(t) > 0 {
		addPair(out, "trailers", mdNode(t))
	}
	out.HeadComment = comment(notes)
	return out
}

// recordedCalls says how many recorded calls a rule stands for.
func recordedCalls(n int) string {
	if n == 1 {
		return "1 recorded call"
	}
	return fmt.Sprintf("%d recorded calls", n)
}

// name returns a rule name from the method's name, unique in the script.
func (w *writer) name(c *Call) string {
	base := string(c.Desc.Name())
	if c.Dir == calls.Reverse {
		base = "answer-" + base
	}
	name := base
	for i := 2; w.names[name]; i++ {
		name = fmt.Sprintf("%s-%d", base, i)
	}
	w.names[name] = true
	return name
}

// final writes how the call ended: its reply, its stream of responses, or
// its failure.
func (w *writer) final(out *yaml.Node, c *Call) {
	st := c.Status
	if st == nil {
		st = status.New(codes.OK, "")
	}
	streams := c.Desc.IsStreamingServer()
	switch {
	case streams:
		seq := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for _, m := range c.Responses {
			seq.Content = append(seq.Content, w.v.message(m.ProtoReflect()))
		}
		if len(seq.Content) > 0 || st.Code() == codes.OK {
			addPair(out, "stream", seq)
		}
	case st.Code() == codes.OK && len(c.Responses) > 0:
		addPair(out, "reply", w.v.message(c.Responses[0].ProtoReflect()))
	case st.Code() == codes.OK:
		addPair(out, "reply", flow(mapping()))
	}
	if st.Code() != codes.OK {
		addPair(out, "fail", w.failNode(st))
	}
}

// failNode writes a status as a `fail` (or `else`) mapping.
func (w *writer) failNode(st *status.Status) *yaml.Node {
	f := mapping()
	addPair(f, "code", scalar("!!str", calls.CodeName(st.Code())))
	if st.Message() != "" {
		addPair(f, "message", text(st.Message()))
	}
	if details := st.Proto().GetDetails(); len(details) > 0 {
		seq := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for _, d := range details {
			seq.Content = append(seq.Content, w.v.message(d.ProtoReflect()))
		}
		addPair(f, "details", seq)
	}
	return flowIfFits(f)
}

// callSteps writes the reverse calls c caused as `call` steps, each
// expecting the answer the client gave; left says which it could not
// write (call steps make unary calls only).
func (w *writer) callSteps(c *Call) (steps *yaml.Node, left []string) {
	steps = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	for _, r := range w.caused[c.ID] {
		if r.Desc.IsStreamingClient() || r.Desc.IsStreamingServer() {
			left = append(left, fmt.Sprintf("not replayed: the %s reverse call to %s (call steps make unary calls)", kindName(r.Desc), r.Method))
			continue
		}
		call := mapping()
		addPair(call, "method", scalar("!!str", r.Method))
		if len(r.Requests) > 0 {
			if with := w.v.message(r.Requests[0].ProtoReflect()); len(with.Content) > 0 {
				addPair(call, "with", with)
			}
		}
		if md := userMetadata(r.Metadata); len(md) > 0 {
			addPair(call, "metadata", mdNode(md))
		}
		addPair(call, "expect", w.expectNode(r))
		step := mapping()
		addPair(step, "call", call)
		steps.Content = append(steps.Content, step)
	}
	return steps, left
}

// expectNode writes the answer the client gave a reverse call as the
// call step's expectation.
func (w *writer) expectNode(r *Call) *yaml.Node {
	exp := mapping()
	st := r.Status
	if st == nil {
		st = status.New(codes.OK, "")
	}
	addPair(exp, "code", scalar("!!str", calls.CodeName(st.Code())))
	if st.Code() == codes.OK && len(r.Responses) > 0 {
		if reply := w.v.withDefaults(r.Responses[0].ProtoReflect()); len(reply.Content) > 0 {
			addPair(exp, "reply", reply)
		}
	}
	return flowIfFits(exp)
}

func kindName(md protoreflect.MethodDescriptor) string {
	switch {
	case md.IsStreamingClient() && md.IsStreamingServer():
		return "bidi-streaming"
	case md.IsStreamingClient():
		return "client-streaming"
	}
	return "server-streaming"
}

// mdNode writes metadata as a mapping of a value (or a list of values)
// per key; values of -bin keys as {base64: ...}.
func mdNode(md metadata.MD) *yaml.Node {
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := mapping()
	for _, k := range keys {
		vals := md[k]
		one := func(v string) *yaml.Node {
			if len(k) > 4 && k[len(k)-4:] == "-bin" {
				return bytesNode([]byte(v))
			}
			return text(v)
		}
		if len(vals) == 1 {
			addPair(out, k, one(vals[0]))
			continue
		}
		seq := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Style: yaml.FlowStyle}
		for _, v := range vals {
			seq.Content = append(seq.Content, one(v))
		}
		addPair(out, k, seq)
	}
	return flowIfFits(out)
}

// expectations counts the calls of each method, each way.
func expectations(forward, reverse []*Call) *yaml.Node {
	out := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	for _, side := range []struct {
		dir string
		cs  []*Call
	}{{"forward", forward}, {"reverse", reverse}} {
		for _, group := range byMethod(side.cs) {
			e := mapping()
			addPair(e, "method", scalar("!!str", group[0].Method))
			addPair(e, "dir", scalar("!!str", side.dir))
			addPair(e, "count", scalar("!!int", strconv.Itoa(len(group))))
			out.Content = append(out.Content, flow(e))
		}
	}
	return out
}

func flow(n *yaml.Node) *yaml.Node {
	n.Style = yaml.FlowStyle
	return n
}

// flowIfFits writes a mapping on one line when all its values are
// scalars or one-line collections.
func flowIfFits(n *yaml.Node) *yaml.Node {
	for i := 1; i < len(n.Content); i += 2 {
		v := n.Content[i]
		if v.Kind != yaml.ScalarNode && v.Style != yaml.FlowStyle {
			return n
		}
	}
	n.Style = yaml.FlowStyle
	return n
}
