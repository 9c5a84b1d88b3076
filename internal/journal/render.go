package journal

import (
	"encoding/json"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/bcctl/bcctl/internal/calls"
)

// The bounds of a Renderer's memory of rendered messages.
const (
	// renderCacheLen is how many messages it remembers; when it is full it
	// forgets them all and starts again.
	renderCacheLen = 1024
	// renderCacheMaxWire is the largest message (its wire encoding) it
	// remembers.
	renderCacheMaxWire = 1 << 10
)

// Renderer builds entries with one Rendering and remembers the JSON of the
// small messages it rendered last, by their wire encoding. A mock
// server's scripted answers repeat, and so do a load test's requests, and
// protojson of a dynamic message costs several times its wire encoding. It
// is safe for concurrent use.
type Renderer struct {
	r Rendering

	mu    sync.Mutex
	cache map[string]json.RawMessage // message name, NUL, wire bytes; guarded by mu
}

// NewRenderer returns a Renderer that renders as r says.
func NewRenderer(r Rendering) *Renderer {
	return &Renderer{r: r, cache: make(map[string]json.RawMessage)}
}

// FromEvent is FromEvent with the Renderer's Rendering and memory.
func (r *Renderer) FromEvent(ev *calls.Event, by string) Entry {
	return fromEvent(ev, by, r.r, r.MessageJSON)
}

// MessageJSON is MessageJSON with the Renderer's Rendering and memory. The
// JSON it returns may be shared: do not modify it.
func (r *Renderer) MessageJSON(m proto.Message) json.RawMessage {
	wire, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil || len(wire) > renderCacheMaxWire {
		return MessageJSON(m, r.r)
	}
	name := m.ProtoReflect().Descriptor().FullName()
	key := make([]byte, 0, len(name)+1+len(wire))
	key = append(append(append(key, name...), 0), wire...)
	r.mu.Lock()
	out, ok := r.cache[string(key)]
	r.mu.Unlock()
	if ok {
		return out
	}
	out = MessageJSON(m, r.r)
	r.mu.Lock()
	if len(r.cache) >= renderCacheLen {
		clear(r.cache)
	}
	r.cache[string(key)] = out
	r.mu.Unlock()
	return out
}
