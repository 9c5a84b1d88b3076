package journal

import (
	"encoding/json"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/dynamic"
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

// Renderer builds entries with one type resolver and remembers the JSON of
// the small messages it rendered last, by their wire encoding. A mock
// server's scripted answers repeat, and so do a load test's requests, and
// protojson of a dynamic message costs several times its wire encoding. It
// is safe for concurrent use.
type Renderer struct {
	resolver dynamic.TypeResolver

	mu    sync.Mutex
	cache map[string]json.RawMessage // message name, NUL, wire bytes; guarded by mu
}

// NewRenderer returns a Renderer that resolves Any values with resolver
// (nil means the program's registry).
func NewRenderer(resolver dynamic.TypeResolver) *Renderer {
	return &Renderer{resolver: resolver, cache: make(map[string]json.RawMessage)}
}

// FromEvent is FromEvent with the Renderer's resolver and memory.
func (r *Renderer) FromEvent(ev *calls.Event, by string) Entry {
	return fromEvent(ev, by, r.resolver, r.MessageJSON)
}

// MessageJSON is MessageJSON with the Renderer's resolver and memory. The
// JSON it returns may be shared: do not modify it.
func (r *Renderer) MessageJSON(m proto.Message) json.RawMessage {
	wire, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil || len(wire) > renderCacheMaxWire {
		return MessageJSON(m, r.resolver)
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
	out = MessageJSON(m, r.resolver)
	r.mu.Lock()
	if len(r.cache) >= renderCacheLen {
		clear(r.cache)
	}
	r.cache[string(key)] = out
	r.mu.Unlock()
	return out
}
