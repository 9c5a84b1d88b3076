package journal

import (
	"encoding/json"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// entryMessages are the messages an Entry was built from, and how.
type entryMessages struct {
	requests, responses []proto.Message
	r                   Rendering
}

// WithDefaults returns e with its requests and responses rendered with
// the fields at their default value too (what --emit-defaults shows), when
// e was built from the messages; an entry read back from a journal is
// returned as it is. A journal itself leaves default values out.
func (e Entry) WithDefaults() Entry {
	m := e.messages
	if m == nil {
		return e
	}
	r := m.r
	r.EmitDefaults = true
	render := func(msg proto.Message) json.RawMessage { return MessageJSON(msg, r) }
	e.Requests = messagesJSON(m.requests, render)
	e.Responses = messagesJSON(m.responses, render)
	return e
}

// Defaulted returns, for each request and each response, the names of its
// fields that hold their default value without the message saying it was
// set: proto3 scalars and enums at zero, which a rendering without defaults
// leaves out (so that {state: COMMIT}, COMMIT being 0, reads {}) and one
// with them shows as if someone had set them. Both are nil for an entry
// read back from a journal.
func (e Entry) Defaulted() (requests, responses [][]string) {
	if e.messages == nil {
		return nil, nil
	}
	return defaultedFields(e.messages.requests), defaultedFields(e.messages.responses)
}

func defaultedFields(msgs []proto.Message) [][]string {
	if len(msgs) == 0 {
		return nil
	}
	out := make([][]string, len(msgs))
	for i, msg := range msgs {
		m := msg.ProtoReflect()
		fields := m.Descriptor().Fields()
		for j := range fields.Len() {
			fd := fields.Get(j)
			if fd.HasPresence() || fd.Cardinality() == protoreflect.Repeated || m.Has(fd) {
				continue
			}
			out[i] = append(out[i], string(fd.Name()))
		}
	}
	return out
}
