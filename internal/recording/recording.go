package recording

import (
	"bytes"
	"fmt"
	"sort"
	"strings"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"gopkg.in/yaml.v3"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/dynamic"
)

// Call is one call of the recorded session.
type Call struct {
	// ID numbers the session's calls; Cause is the ID of the forward call
	// during which a reverse call was made (0: none).
	ID, Cause uint64
	// Dir is the call's direction.
	Dir calls.Direction
	// Method is "pkg.Service/Method"; Desc its descriptor, nil when no
	// schema knows it (the call is then left out, and named in a comment).
	Method string
	Desc   protoreflect.MethodDescriptor
	// Metadata is the request metadata; Header and Trailer the response's.
	Metadata, Header, Trailer metadata.MD
	// Requests and Responses are the messages each way, decoded.
	Requests, Responses []proto.Message
	// Status is how the call ended (nil: OK).
	Status *status.Status
}

// Options configure Script.
type Options struct {
	// Comment lines head the script (say, where and when it was recorded).
	Comment []string
	// Types resolves the types inside google.protobuf.Any values.
	Types dynamic.TypeResolver
}

// Script returns the script that replays session (in the order the calls
// started).
func Script(session []*Call, opts Options) ([]byte, error) {
	w := &writer{v: values{types: opts.Types}, names: map[string]bool{}, caused: map[uint64][]*Call{}}
	var forward, reverse []*Call
	var skipped []string
	seenSkip := map[string]bool{}
	for _, c := range session {
		switch {
		case builtIn(c.Method):
		case c.Desc == nil:
			if !seenSkip[c.Method] {
				seenSkip[c.Method] = true
				skipped = append(skipped, fmt.Sprintf("%s %s", c.Dir, c.Method))
			}
		case c.Dir == calls.Reverse:
			reverse = append(reverse, c)
			if c.Cause != 0 {
				w.caused[c.Cause] = append(w.caused[c.Cause], c)
			}
		default:
			forward = append(forward, c)
		}
	}

	doc := mapping()
	if rules := w.section(forward, true); len(rules.Content) > 0 {
		addPair(doc, "rules", rules)
	}
	if rules := w.section(reverse, false); len(rules.Content) > 0 {
		addPair(doc, "backchannel", rules)
	}
	if exp := expectations(forward, reverse); len(exp.Content) > 0 {
		addPair(doc, "expect", exp)
	}
	head := append([]string(nil), opts.Comment...)
	if len(skipped) > 0 {
		head = append(head, "Left out, for want of their schema: "+strings.Join(skipped, ", "))
	}
	if n := w.orphans(forward); n > 0 {
		head = append(head, fmt.Sprintf("Left out: %d reverse calls made outside any recorded forward call (their backchannel rules are kept).", n))
	}
	doc.HeadComment = comment(head)

	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{doc}}); err != nil {
		return nil, fmt.Errorf("recording: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("recording: %w", err)
	}
	return buf.Bytes(), nil
}

// builtIn reports the services every gRPC end serves for itself:
// reflection and health are not part of what a session does.
func builtIn(method string) bool {
	return strings.HasPrefix(method, "grpc.reflection.") || strings.HasPrefix(method, "grpc.health.")
}

// writer builds the rules.
type writer struct {
	v      values
	names  map[string]bool
	caused map[uint64][]*Call // reverse calls by the forward call that caused them
}

// orphans counts the reverse calls whose cause is no recorded forward
// call.
func (w *writer) orphans(forward []*Call) int {
	known := map[uint64]bool{}
	for _, c := range forward {
		known[c.ID] = true
	}
	n := 0
	for cause, cs := range w.caused {
		if !known[cause] {
			n += len(cs)
		}
	}
	return n
}

// section returns the rules answering calls: forward (with the reverse
// calls each caused as `call` steps) or reverse.
func (w *writer) section(cs []*Call, forward bool) *yaml.Node {
	out := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	for _, group := range byMethod(cs) {
		for _, r := range w.plan(group) {
			out.Content = append(out.Content, w.rule(r, forward))
		}
	}
	return out
}

// byMethod groups calls by method, in the order methods were first
// called.
func byMethod(cs []*Call) [][]*Call {
	var order []string
	groups := map[string][]*Call{}
	for _, c := range cs {
		if _, ok := groups[c.Method]; !ok {
			order = append(order, c.Method)
		}
		groups[c.Method] = append(groups[c.Method], c)
	}
	out := make([][]*Call, len(order))
	for i, m := range order {
		out[i] = groups[m]
	}
	return out
}

// planned is one rule to write: the call whose answer it gives, the
// request fields it matches on, and how many calls it answers (0: any).
type planned struct {
	c     *Call
	match []protoreflect.FieldDescriptor
	times int
	calls int // how many recorded calls it stands for
}

// plan decides the rules of one method's calls: one rule when every call
// got the same answer; else a rule per value of the request field (or
// fields) that tells the answers apart; else a sequence.
func (w *writer) plan(group []*Call) []planned {
	keys := make([]string, len(group))
	for i, c := range group {
		keys[i] = w.answerKey(c)
	}
	if allEqual(keys) {
		return []planned{{c: group[0], calls: len(group)}}
	}
	fields := varyingScalars(group)
	for _, fd := range fields {
		if rules, ok := partition(group, keys, []protoreflect.FieldDescriptor{fd}); ok {
			return rules
		}
	}
	if len(fields) > 1 {
		if rules, ok := partition(group, keys, fields); ok {
			return rules
		}
	}
	var out []planned
	for i := 0; i < len(group); {
		j := i + 1
		for j < len(group) && keys[j] == keys[i] {
			j++
		}
		out = append(out, planned{c: group[i], times: j - i, calls: j - i})
		i = j
	}
	return out
}

// partition splits calls by the values of fields; it fails when calls
// with the same values got different answers.
func partition(group []*Call, keys []string, fields []protoreflect.FieldDescriptor) ([]planned, bool) {
	byValue := map[string]int{} // value -> index in out
	var out []planned
	answer := map[string]string{}
	for i, c := range group {
		v := fieldValues(c, fields)
		if a, ok := answer[v]; ok {
			if a != keys[i] {
				return nil, false
			}
			out[byValue[v]].calls++
			continue
		}
		answer[v] = keys[i]
		byValue[v] = len(out)
		out = append(out, planned{c: c, match: fields, calls: 1})
	}
	return out, true
}

// varyingScalars returns the top-level scalar fields of the calls' first
// requests whose values are not all the same, in field-number order.
func varyingScalars(group []*Call) []protoreflect.FieldDescriptor {
	in := group[0].Desc.Input()
	var out []protoreflect.FieldDescriptor
	for i := 0; i < in.Fields().Len(); i++ {
		fd := in.Fields().Get(i)
		if fd.IsList() || fd.IsMap() || fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind {
			continue
		}
		first := fieldValues(group[0], []protoreflect.FieldDescriptor{fd})
		for _, c := range group[1:] {
			if fieldValues(c, []protoreflect.FieldDescriptor{fd}) != first {
				out = append(out, fd)
				break
			}
		}
	}
	return out
}

// fieldValues identifies the values of fields in c's first request.
func fieldValues(c *Call, fields []protoreflect.FieldDescriptor) string {
	if len(c.Requests) == 0 {
		return "\x00none"
	}
	m := c.Requests[0].ProtoReflect()
	var b strings.Builder
	for _, fd := range fields {
		fmt.Fprintf(&b, "%v\x00", m.Get(fd).Interface())
	}
	return b.String()
}

func allEqual(keys []string) bool {
	for _, k := range keys[1:] {
		if k != keys[0] {
			return false
		}
	}
	return true
}

// answerKey identifies everything a rule for c writes: the answer, and
// for a forward call the reverse calls it caused with their answers.
func (w *writer) answerKey(c *Call) string {
	var b strings.Builder
	writeAnswer(&b, c)
	for _, r := range w.caused[c.ID] {
		fmt.Fprintf(&b, "\x01%s\x00", r.Method)
		for _, m := range r.Requests {
			b.Write(marshal(m))
			b.WriteByte(0)
		}
		writeMD(&b, userMetadata(r.Metadata))
		writeAnswer(&b, r)
	}
	return b.String()
}

func writeAnswer(b *strings.Builder, c *Call) {
	st := c.Status
	if st == nil {
		st = status.New(0, "")
	}
	b.Write(marshal(st.Proto()))
	b.WriteByte(0)
	for _, m := range c.Responses {
		b.Write(marshal(m))
		b.WriteByte(0)
	}
	writeMD(b, userMetadata(c.Header))
	writeMD(b, userMetadata(c.Trailer))
}

func writeMD(b *strings.Builder, md metadata.MD) {
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(b, "%s=%q\x00", k, md[k])
	}
}

func marshal(m proto.Message) []byte {
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	return b
}

// userMetadata is md without what gRPC sets on every call (pseudo-headers,
// content type, user agent, the grpc- keys): what a script writes.
func userMetadata(md metadata.MD) metadata.MD {
	out := metadata.MD{}
	for k, v := range md {
		if strings.HasPrefix(k, ":") || strings.HasPrefix(k, "grpc-") {
			continue
		}
		switch k {
		case "content-type", "user-agent", "te":
			continue
		}
		out[k] = v
	}
	return out
}

// comment joins lines into a YAML comment.
func comment(lines []string) string {
	if len(lines) == 0 {
		return ""
	}
	return "# " + strings.Join(lines, "\n# ")
}
