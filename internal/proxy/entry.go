package proxy

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/journal"
)

// Decoder turns what the proxy saw into journal entries: messages as JSON
// where a schema knows the method, and kept as {"@wire": base64} where
// none does. It is safe for concurrent use.
type Decoder struct {
	// Forward is the schema of the upstream's services, for forward calls;
	// nil when there is none.
	Forward dynamic.Source
	// Reverse is the schema of the services clients offer on their
	// backchannels, for reverse calls; nil means Forward.
	Reverse dynamic.Source
	// Bytes says how the entries show bytes fields ("" is base64, as
	// protobuf JSON writes them; dynamic.BytesText shows UTF-8 bytes as
	// text).
	Bytes dynamic.BytesMode
	// Clients, when set and Reverse is nil, learns the schema of a
	// client's backchannel by reflection over it, for the reverse calls
	// into that client whose method Forward does not know (Pending asks
	// for it; Method and Entry use it once it is known).
	Clients *ClientSchemas

	mu      sync.Mutex
	methods map[methodKey]protoreflect.MethodDescriptor // nil: the schema does not know it
}

type methodKey struct {
	dir    calls.Direction
	method string
}

// MethodName returns a call's method as the journal writes it,
// "pkg.Service/Method".
func MethodName(c *Call) string { return strings.TrimPrefix(c.Method, "/") }

// method returns the descriptor of c's method, nil when no schema knows
// it. Each method is looked up once. Methods the schema does not know but
// bcctl itself does (reflection, health) are found in the program's
// registry.
func (d *Decoder) method(ctx context.Context, dir calls.Direction, name string) protoreflect.MethodDescriptor {
	key := methodKey{dir, name}
	d.mu.Lock()
	md, seen := d.methods[key]
	d.mu.Unlock()
	if seen {
		return md
	}
	md = nil
	if src := d.source(dir); src != nil {
		if found, err := dynamic.FindMethod(ctx, src, name); err == nil {
			md = found
		}
	}
	if md == nil {
		md = builtInMethod(name)
	}
	d.mu.Lock()
	if d.methods == nil {
		d.methods = map[methodKey]protoreflect.MethodDescriptor{}
	}
	d.methods[key] = md
	d.mu.Unlock()
	return md
}

// source returns the schema of dir's calls, nil when there is none.
func (d *Decoder) source(dir calls.Direction) dynamic.Source {
	if dir == calls.Reverse && d.Reverse != nil {
		return d.Reverse
	}
	return d.Forward
}

// GivenMethod returns the descriptor of c's method in the schemas the
// decoder was given (what bcctl proxy --script is checked against), nil
// when none knows it.
func (d *Decoder) GivenMethod(ctx context.Context, c *Call) protoreflect.MethodDescriptor {
	return d.method(ctx, c.Dir, MethodName(c))
}

// Method returns the descriptor of c's method, nil when no schema knows
// it: the schemas given, then what was learnt of c's client's backchannel.
func (d *Decoder) Method(ctx context.Context, c *Call) protoreflect.MethodDescriptor {
	md, _ := d.methodOf(ctx, c)
	return md
}

// methodOf returns the descriptor of c's method and the resolver of the
// types inside Any in its messages.
func (d *Decoder) methodOf(ctx context.Context, c *Call) (protoreflect.MethodDescriptor, dynamic.TypeResolver) {
	if md := d.method(ctx, c.Dir, MethodName(c)); md != nil || !d.learns(c) {
		return md, d.types(c.Dir)
	}
	cs, ok := d.Clients.Learnt(c.Conn)
	if !ok || cs.Source() == nil {
		return nil, d.types(c.Dir)
	}
	src := cs.Source()
	md, err := dynamic.FindMethod(ctx, src, MethodName(c))
	if err != nil {
		return nil, d.types(c.Dir)
	}
	if types := d.types(c.Dir); types != nil {
		return md, dynamic.ChainTypes(src.Types(), types)
	}
	return md, src.Types()
}

// learns reports whether c's method may be learnt from its client's
// backchannel: a reverse call, no backchannel schema given.
func (d *Decoder) learns(c *Call) bool {
	return c.Dir == calls.Reverse && d.Reverse == nil && d.Clients != nil && c.Conn.Kind == Multiplexed
}

// Pending returns a channel that is closed once c's messages decode as
// well as they ever will, or nil when they do now: c is a reverse call
// whose method no schema given knows, and the proxy is learning its
// client's backchannel schema (it starts to, the first time a connection
// needs it). Pending may look the method up in the schemas given, which
// the first time may ask the upstream's reflection; it never waits for
// the client.
func (d *Decoder) Pending(ctx context.Context, c *Call) <-chan struct{} {
	if !d.learns(c) || d.method(ctx, c.Dir, MethodName(c)) != nil {
		return nil
	}
	return d.Clients.Learn(c.Conn).Done()
}

// Prefetch starts learning c's client's backchannel schema when c is a
// reverse call whose method the schemas given are already known not to
// know, so that it is known by the time c ends. It does nothing that could
// wait: a method not looked up yet is left to Pending.
func (d *Decoder) Prefetch(c *Call) {
	if !d.learns(c) {
		return
	}
	d.mu.Lock()
	md, seen := d.methods[methodKey{c.Dir, MethodName(c)}]
	d.mu.Unlock()
	if seen && md == nil {
		d.Clients.Learn(c.Conn)
	}
}

// Messages parses raw messages of type desc; it fails on the first that
// does not parse.
func (d *Decoder) Messages(dir calls.Direction, desc protoreflect.MessageDescriptor, raw [][]byte) ([]proto.Message, error) {
	out := make([]proto.Message, len(raw))
	for i, b := range raw {
		msg := dynamicpb.NewMessage(desc)
		if err := (proto.UnmarshalOptions{Resolver: d.types(dir)}).Unmarshal(b, msg); err != nil {
			return nil, fmt.Errorf("message %d of %s: %w", i+1, desc.FullName(), err)
		}
		out[i] = msg
	}
	return out, nil
}

// Types returns the resolver of the types inside Any for calls of dir.
func (d *Decoder) Types(dir calls.Direction) dynamic.TypeResolver { return d.types(dir) }

// types returns the resolver of Any types for dir's schema.
func (d *Decoder) types(dir calls.Direction) dynamic.TypeResolver {
	if src := d.source(dir); src != nil {
		return src.Types()
	}
	return nil
}

// builtInMethod finds name ("pkg.Service/Method") in the program's
// registry, which holds the services bcctl itself uses: reflection and
// health.
func builtInMethod(name string) protoreflect.MethodDescriptor {
	svc, method, ok := strings.Cut(name, "/")
	if !ok || !strings.HasPrefix(svc, "grpc.reflection.") && !strings.HasPrefix(svc, "grpc.health.") {
		return nil
	}
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
	if err != nil {
		return nil
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return nil
	}
	return sd.Methods().ByName(protoreflect.Name(method))
}

// Entry returns the journal entry of a call that has ended. ID and Cause
// are the proxy's: a call is numbered when it reaches the proxy.
func (d *Decoder) Entry(ctx context.Context, c *Call) journal.Entry {
	name := MethodName(c)
	md, types := d.methodOf(ctx, c)
	e := journal.Entry{
		ID: c.ID, Cause: c.Cause, Time: c.Start.UTC(), Dir: c.Dir.String(), Origin: journal.OriginRelayed,
		Peer: &journal.Peer{ID: c.Conn.PeerID, Addr: addrString(c.Conn.ClientAddr)}, Method: name,
		Metadata: journal.MetadataJSON(c.Metadata), Header: journal.MetadataJSON(c.Header),
		Trailer: journal.MetadataJSON(c.Trailer), Status: journal.StatusOf(c.Status, types),
		DurationMS: ms(c.Duration().Microseconds()),
		Relay: &journal.Relay{
			Conn: c.Conn.ID, AddedMS: ms(c.Added().Microseconds()), EndedBy: c.EndedBy.String(), Gone: c.Gone, Changed: c.Changed,
			RequestCount: c.RequestCount, ResponseCount: c.ResponseCount, RequestBytes: c.RequestBytes, ResponseBytes: c.ResponseBytes,
		},
	}
	if !c.OutStart.IsZero() {
		e.Relay.CalleeMS = ms(c.CalleeDuration().Microseconds())
	}
	if !c.Rule.IsZero() {
		e.Rule = &journal.Rule{Name: c.Rule.Name, Pos: c.Rule.Pos.String()}
		e.By = journal.ByScript
	}
	if c.Tampered && c.OutStart.IsZero() {
		// A rule answered without the callee.
		e.Origin = journal.OriginAnswered
	}
	var in, out protoreflect.MessageDescriptor
	if md != nil {
		in, out = md.Input(), md.Output()
	}
	r := journal.Rendering{Resolver: types, Bytes: d.Bytes}
	e.Requests = messagesJSON(c.Requests, in, r)
	e.Responses = messagesJSON(c.Responses, out, r)
	return e
}

// StreamEntry returns the journal entry of a side stream that has ended.
func (d *Decoder) StreamEntry(s *SideStream) journal.Entry {
	e := journal.Entry{
		ID: s.ID, Cause: s.Cause, Time: s.Start.UTC(), Dir: journal.DirReverse, Origin: journal.OriginRelayed,
		Peer:       &journal.Peer{ID: s.Conn.PeerID, Addr: addrString(s.Conn.ClientAddr)},
		DurationMS: ms(s.Duration().Microseconds()),
		Stream: &journal.Stream{
			Conn: s.Conn.ID, Kind: s.Kind, ToClient: s.ToClient, ToUpstream: s.ToUpstream, ClosedFirst: s.ClosedFirst.String(),
		},
	}
	if s.HasChannelID {
		id := s.ChannelID
		e.Stream.ChannelID = &id
	}
	if s.Err != nil {
		e.Stream.Error = s.Err.Error()
	}
	return e
}

// messagesJSON renders raw messages of type desc (nil: unknown) as the
// journal keeps them.
func messagesJSON(raw [][]byte, desc protoreflect.MessageDescriptor, r journal.Rendering) []json.RawMessage {
	if len(raw) == 0 {
		return nil
	}
	out := make([]json.RawMessage, len(raw))
	for i, b := range raw {
		out[i] = messageJSON(b, desc, r)
	}
	return out
}

// messageJSON renders one message: as protojson when desc is known and
// the bytes parse as it, else as {"@wire": base64} (with "@type" and
// "@error" when they did not parse).
func messageJSON(b []byte, desc protoreflect.MessageDescriptor, r journal.Rendering) json.RawMessage {
	wire := map[string]string{"@wire": base64.StdEncoding.EncodeToString(b)}
	if desc != nil {
		msg := dynamicpb.NewMessage(desc)
		err := proto.UnmarshalOptions{Resolver: r.Resolver}.Unmarshal(b, msg)
		if err == nil {
			return journal.MessageJSON(msg, r)
		}
		wire["@type"], wire["@error"] = string(desc.FullName()), err.Error()
	}
	out, _ := json.Marshal(wire)
	return out
}

// ms converts microseconds to the journal's milliseconds.
func ms(us int64) float64 { return float64(us) / 1000 }
