package journal

import (
	"encoding/json"
	"sync"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

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
	key   []byte                     // a spare key buffer; guarded by mu

	// maps says, per message type (protoreflect.FullName), whether its
	// messages can hold a map (bool).
	maps sync.Map
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
	pm := m.ProtoReflect()
	r.mu.Lock()
	key := r.key
	r.key = nil
	r.mu.Unlock()

	// The key is the type's name and the message's wire encoding. Any
	// encoding is a correct key, but only the deterministic one puts the
	// entries of a map in one order every time; it costs more (it checks
	// and sorts the fields too), so it is used for messages holding a map.
	key = append(append(key[:0], pm.Descriptor().FullName()...), 0)
	prefix := len(key)
	key, err := proto.MarshalOptions{Deterministic: r.holdsMap(pm), AllowPartial: true}.MarshalAppend(key, m)
	if err != nil || len(key)-prefix > renderCacheMaxWire {
		r.putKey(key)
		return MessageJSON(m, r.r)
	}
	r.mu.Lock()
	out, ok := r.cache[string(key)]
	r.mu.Unlock()
	if ok {
		r.putKey(key)
		return out
	}
	out = MessageJSON(m, r.r)
	r.mu.Lock()
	if len(r.cache) >= renderCacheLen {
		clear(r.cache)
	}
	r.cache[string(key)] = out
	if r.key == nil {
		r.key = key
	}
	r.mu.Unlock()
	return out
}

// putKey keeps key's buffer for the next message.
func (r *Renderer) putKey(key []byte) {
	r.mu.Lock()
	if r.key == nil {
		r.key = key
	}
	r.mu.Unlock()
}

// holdsMap tells whether m holds a map field that is set, in itself or in
// the messages it holds.
func (r *Renderer) holdsMap(m protoreflect.Message) bool {
	md := m.Descriptor()
	can, ok := r.maps.Load(md.FullName())
	if !ok {
		can = holdsMaps(md, map[protoreflect.FullName]bool{})
		r.maps.Store(md.FullName(), can)
	}
	if !can.(bool) {
		return false
	}
	found := false
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsMap():
			found = true
		case fd.Message() == nil:
		case fd.IsList():
			for i := range v.List().Len() {
				if found = r.holdsMap(v.List().Get(i).Message()); found {
					break
				}
			}
		default:
			found = r.holdsMap(v.Message())
		}
		return !found
	})
	return found
}

// holdsMaps tells whether messages of md can hold a map field, in them or
// in the messages they hold. seen holds the types already being looked at.
func holdsMaps(md protoreflect.MessageDescriptor, seen map[protoreflect.FullName]bool) bool {
	if seen[md.FullName()] {
		return false
	}
	seen[md.FullName()] = true
	fields := md.Fields()
	for i := range fields.Len() {
		f := fields.Get(i)
		if f.IsMap() {
			return true
		}
		if f.Message() != nil && holdsMaps(f.Message(), seen) {
			return true
		}
	}
	return false
}
