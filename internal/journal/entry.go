package journal

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/dynamic"
)

// Directions of calls, as written in Entry.Dir.
const (
	// DirForward is a call to the upstream (bcctl serve, or the server bcctl
	// call dials).
	DirForward = "forward"
	// DirReverse is a call into a peer's backchannel.
	DirReverse = "reverse"
)

// Origins of calls, as written in Entry.Origin.
const (
	// OriginAnswered: this process answered the call.
	OriginAnswered = "answered"
	// OriginMade: this process made the call.
	OriginMade = "made"
	// OriginRelayed: this process (bcctl proxy) passed the call on from
	// its caller to its callee.
	OriginRelayed = "relayed"
)

// Who answered or made a call, as written in Entry.By.
const (
	// ByScript: a script rule answered the call, or a script step made it.
	ByScript = "script"
	// ByCLI: bcctl call made the call itself (its forward call).
	ByCLI = "cli"
	// ByTUI: a person answered or made the call in the TUI.
	ByTUI = "tui"
	// ByAdmin: the call was triggered through bcctl serve's admin API.
	ByAdmin = "admin"
)

// Entry is one journal line: one finished call.
type Entry struct {
	// ID numbers the entries of one journal, from 1.
	ID uint64 `json:"id"`
	// Cause is the ID of the answered call during which this call was made.
	Cause uint64 `json:"cause,omitempty"`
	// Time is when the call started, in UTC.
	Time time.Time `json:"time"`
	// Dir is DirForward or DirReverse.
	Dir string `json:"dir"`
	// Origin is OriginAnswered or OriginMade.
	Origin string `json:"origin"`
	// By says who answered or made the call (ByScript, ByCLI, ByTUI,
	// ByAdmin); empty when unknown.
	By string `json:"by,omitempty"`
	// Peer is who called (answered calls) or who was called (made calls).
	Peer *Peer `json:"peer,omitempty"`
	// Method is "pkg.Service/Method".
	Method string `json:"method"`
	// Metadata is the request metadata, received or sent. Values of keys
	// ending in -bin are base64 (standard encoding, padded).
	Metadata map[string][]string `json:"metadata,omitempty"`
	// Requests are the request messages in order, as protojson with proto
	// field names.
	Requests []json.RawMessage `json:"requests,omitempty"`
	// Header is the response header metadata.
	Header map[string][]string `json:"header,omitempty"`
	// Responses are the response messages in order.
	Responses []json.RawMessage `json:"responses,omitempty"`
	// Trailer is the response trailer metadata.
	Trailer map[string][]string `json:"trailer,omitempty"`
	// Status is how the call ended.
	Status *Status `json:"status,omitempty"`
	// DurationMS is how long the call took, in milliseconds.
	DurationMS float64 `json:"duration_ms"`
	// Rule is the script rule that answered or made the call.
	Rule *Rule `json:"rule,omitempty"`
	// Step is where the script `call` step that made the call is written
	// ("file:line:col").
	Step string `json:"step,omitempty"`
	// Relay is what bcctl proxy knows of a call it relayed or answered.
	Relay *Relay `json:"relay,omitempty"`
	// Stream describes a side stream bcctl proxy piped (an entry with a
	// Stream has no Method and is no call).
	Stream *Stream `json:"stream,omitempty"`
	// Sidechannel describes what went through the call's sidechannel.
	Sidechannel *Sidechannel `json:"sidechannel,omitempty"`

	// messages are the requests and responses themselves when the entry
	// was built from them (not read back), for WithDefaults and Defaulted.
	messages *entryMessages
}

// Sidechannel is what went through the sidechannel of a call (Gitaly's
// raw stream beside the call): the body the client sent and the response
// the server sent back, whichever side bcctl played.
type Sidechannel struct {
	// ID is the sidechannel ID the call carried.
	ID int64 `json:"id"`
	// BodyBytes and BodySHA256 (hex) describe the client's body.
	BodyBytes  int64  `json:"body_bytes"`
	BodySHA256 string `json:"body_sha256,omitempty"`
	// ResponseBytes and ResponseSHA256 describe the server's response.
	ResponseBytes  int64  `json:"response_bytes"`
	ResponseSHA256 string `json:"response_sha256,omitempty"`
	// DurationMS is how long the sidechannel was open, in milliseconds.
	DurationMS float64 `json:"duration_ms"`
	// Fault is the failure a script injected on purpose.
	Fault string `json:"fault,omitempty"`
	// Error says how the sidechannel failed.
	Error string `json:"error,omitempty"`
}

// SidechannelOf returns the journal form of s; nil for nil.
func SidechannelOf(s *calls.Sidechannel) *Sidechannel {
	if s == nil {
		return nil
	}
	return &Sidechannel{
		ID: s.ID, BodyBytes: s.BodyBytes, BodySHA256: s.BodySHA256,
		ResponseBytes: s.ResponseBytes, ResponseSHA256: s.ResponseSHA256,
		DurationMS: durationMS(s.Duration), Fault: s.Fault, Error: s.Err,
	}
}

// ErrNotACall is returned by Entry.Record for an entry that records no
// call (a side stream).
var ErrNotACall = errors.New("a side stream is not a call")

// Relay is what bcctl proxy adds to the entry of a call: the connection,
// the second leg's timing, and who ended a call that did not end with the
// callee's answer.
type Relay struct {
	// Conn is the proxy's number of the client connection (all clients,
	// plain ones too, from 1).
	Conn uint64 `json:"conn"`
	// CalleeMS is how long the call took between the proxy and its callee
	// (the upstream for a forward call, the client for a reverse one);
	// left out when the callee was not reached.
	CalleeMS float64 `json:"callee_ms,omitempty"`
	// AddedMS is the latency the proxy added: DurationMS less CalleeMS.
	AddedMS float64 `json:"added_ms"`
	// EndedBy is "client", "upstream" or "proxy" when that side ended the
	// call (it cancelled, went away, could not be reached, or a rule
	// answered); left out when the callee answered.
	EndedBy string `json:"ended_by,omitempty"`
	// Gone is set when EndedBy's connection went away mid-call.
	Gone bool `json:"gone,omitempty"`
	// Changed is set when the callee answered but a rule (bcctl proxy
	// --script) changed what the caller got.
	Changed bool `json:"changed,omitempty"`
	// RequestCount and ResponseCount count the messages each way, and
	// RequestBytes and ResponseBytes their bytes; Requests and Responses
	// hold as many of them as the proxy keeps.
	RequestCount  int   `json:"request_count"`
	ResponseCount int   `json:"response_count"`
	RequestBytes  int64 `json:"request_bytes"`
	ResponseBytes int64 `json:"response_bytes"`
}

// Stream is a stream that is not gRPC (Gitaly's sidechannel), piped by
// bcctl proxy from the upstream to a client byte for byte.
type Stream struct {
	// Conn is the proxy's number of the client connection.
	Conn uint64 `json:"conn"`
	// Kind is "sidechannel", or the stream's first bytes, quoted.
	Kind string `json:"kind"`
	// ChannelID is the sidechannel ID the stream carried.
	ChannelID *int64 `json:"channel_id,omitempty"`
	// ToClient and ToUpstream count the bytes piped each way.
	ToClient   int64 `json:"to_client"`
	ToUpstream int64 `json:"to_upstream"`
	// ClosedFirst is the side that closed its end first: "client",
	// "upstream", or "proxy".
	ClosedFirst string `json:"closed_first,omitempty"`
	// Error says why the stream could not be piped.
	Error string `json:"error,omitempty"`
}

// Peer identifies the other side of a call.
type Peer struct {
	// ID is the peer's backchannel ID; 0 (left out) for a plain connection
	// and for the upstream seen from a client.
	ID uint64 `json:"id,omitempty"`
	// Addr is the peer's network address.
	Addr string `json:"addr,omitempty"`
}

// Status is a call's final gRPC status.
type Status struct {
	// Code is the canonical upper-case code name ("OK", "NOT_FOUND").
	Code string `json:"code"`
	// Message is the status message.
	Message string `json:"message,omitempty"`
	// Details are the decoded google.rpc details, each with its "@type".
	Details []json.RawMessage `json:"details,omitempty"`
}

// Rule names the script rule that answered or made a call.
type Rule struct {
	// Name is the rule's name ("rules[2]" when it has none).
	Name string `json:"name"`
	// Pos is where the rule is written, "file:line:col".
	Pos string `json:"pos,omitempty"`
}

// Duration returns DurationMS as a time.Duration.
func (e *Entry) Duration() time.Duration {
	return time.Duration(e.DurationMS * float64(time.Millisecond))
}

// Record returns what a script's expectations count of the entry. The rule
// is counted only for answered calls, as calls.Event.Record does.
//
// An entry of a side stream is no call: Records leaves it out, and Record
// returns ErrNotACall.
func (e *Entry) Record() (calls.Record, error) {
	if e.Stream != nil {
		return calls.Record{}, fmt.Errorf("journal: entry %d: %w", e.ID, ErrNotACall)
	}
	rec := calls.Record{Method: e.Method}
	switch e.Dir {
	case DirForward:
		rec.Dir = calls.Forward
	case DirReverse:
		rec.Dir = calls.Reverse
	default:
		return rec, fmt.Errorf("journal: entry %d: unknown dir %q (want %q or %q)", e.ID, e.Dir, DirForward, DirReverse)
	}
	if e.Peer != nil {
		rec.Peer = e.Peer.ID
	}
	if e.Status != nil {
		code, err := calls.ParseCode(e.Status.Code)
		if err != nil {
			return rec, fmt.Errorf("journal: entry %d: status: %w", e.ID, err)
		}
		rec.Code = code
	}
	if e.Origin == OriginAnswered && e.Rule != nil {
		rec.Rule = e.Rule.Name
	}
	return rec, nil
}

// Call is a call that did not go through a script engine (bcctl call's own
// forward call, a call answered in the TUI), described for NewEntry.
type Call struct {
	Dir, Origin, By string
	Peer            calls.Peer
	Method          string
	Metadata        metadata.MD
	Header, Trailer metadata.MD
	Requests        []proto.Message
	Responses       []proto.Message
	Status          *status.Status
	Start           time.Time
	Duration        time.Duration
	// Sidechannel is what went through the call's sidechannel, if any.
	Sidechannel *calls.Sidechannel
}

// Rendering says how the messages of an entry are written.
type Rendering struct {
	// Resolver resolves the types inside google.protobuf.Any values of
	// messages and status details; nil means the program's registry.
	Resolver dynamic.TypeResolver
	// Bytes says how bytes fields are shown: "" and dynamic.BytesBase64 as
	// protobuf JSON writes them, dynamic.BytesText as their text when they
	// are UTF-8 (--bytes text).
	Bytes dynamic.BytesMode
	// EmitDefaults writes the fields at their default value too
	// (--emit-defaults); a journal leaves them out.
	EmitDefaults bool
}

// NewEntry builds the entry of c (without an ID), its messages rendered
// as r says.
func NewEntry(c Call, r Rendering) Entry {
	return newEntry(c, r, func(m proto.Message) json.RawMessage { return MessageJSON(m, r) })
}

// newEntry builds the entry of c, rendering its messages with render.
func newEntry(c Call, r Rendering, render func(proto.Message) json.RawMessage) Entry {
	resolver := r.Resolver
	return Entry{
		messages:    &entryMessages{requests: c.Requests, responses: c.Responses, r: r},
		Time:        c.Start.UTC(),
		Dir:         c.Dir,
		Origin:      c.Origin,
		By:          c.By,
		Peer:        peerOf(c.Peer),
		Method:      c.Method,
		Metadata:    MetadataJSON(c.Metadata),
		Requests:    messagesJSON(c.Requests, render),
		Header:      MetadataJSON(c.Header),
		Responses:   messagesJSON(c.Responses, render),
		Trailer:     MetadataJSON(c.Trailer),
		Status:      StatusOf(c.Status, resolver),
		DurationMS:  durationMS(c.Duration),
		Sidechannel: SidechannelOf(c.Sidechannel),
	}
}

// FromEvent builds the entry of a script engine's event, with the engine's
// IDs (a Writer renumbers them) and by as Entry.By, its messages rendered
// as r says.
func FromEvent(ev *calls.Event, by string, r Rendering) Entry {
	return fromEvent(ev, by, r, func(m proto.Message) json.RawMessage { return MessageJSON(m, r) })
}

func fromEvent(ev *calls.Event, by string, r Rendering, render func(proto.Message) json.RawMessage) Entry {
	e := newEntry(Call{
		Dir: ev.Dir.String(), Origin: ev.Origin.String(), By: by, Peer: ev.Peer, Method: ev.Method,
		Metadata: ev.Metadata, Header: ev.Header, Trailer: ev.Trailer,
		Requests: ev.Requests, Responses: ev.Responses, Status: ev.Status,
		Start: ev.Start, Duration: ev.Duration, Sidechannel: ev.Sidechannel,
	}, r, render)
	e.ID, e.Cause = ev.ID, ev.Cause
	if !ev.Rule.IsZero() {
		e.Rule = &Rule{Name: ev.Rule.Name, Pos: posString(ev.Rule.Pos)}
	}
	e.Step = posString(ev.Step)
	return e
}

func posString(p calls.Pos) string {
	if p.File == "" && p.Line == 0 {
		return ""
	}
	return p.String()
}

func peerOf(p calls.Peer) *Peer {
	if p.BackchannelID == 0 && p.Addr == "" {
		return nil
	}
	return &Peer{ID: p.BackchannelID, Addr: p.Addr}
}

func durationMS(d time.Duration) float64 {
	// Microsecond precision is plenty and keeps lines short.
	return float64(d.Microseconds()) / 1000
}

// MetadataJSON returns md as a JSON-ready map, with the values of -bin keys
// base64-encoded; nil when md is empty. Without -bin keys it is md's own
// map (an entry is made for every call): modify neither afterwards.
func MetadataJSON(md metadata.MD) map[string][]string {
	if len(md) == 0 {
		return nil
	}
	binary := false
	for k := range md {
		if strings.HasSuffix(k, "-bin") {
			binary = true
			break
		}
	}
	if !binary {
		return md
	}
	out := make(map[string][]string, len(md))
	for k, vs := range md {
		if strings.HasSuffix(k, "-bin") {
			enc := make([]string, len(vs))
			for i, v := range vs {
				enc[i] = base64.StdEncoding.EncodeToString([]byte(v))
			}
			vs = enc
		}
		out[k] = vs
	}
	return out
}

// StatusOf returns st as a journal Status with its details decoded. A nil
// st is OK, as in the status package (status.Convert(nil) is nil).
func StatusOf(st *status.Status, resolver dynamic.TypeResolver) *Status {
	if st == nil {
		return &Status{Code: "OK"}
	}
	s := &Status{Code: calls.CodeName(st.Code()), Message: st.Message()}
	if len(st.Details()) == 0 {
		// Most calls end without details: skip the copy of the status
		// StatusDetailsJSON reads them from.
		return s
	}
	for _, d := range dynamic.StatusDetailsJSON(st, resolver, dynamic.FormatOptions{ProtoNames: true, Compact: true}) {
		s.Details = append(s.Details, json.RawMessage(d))
	}
	return s
}

func messagesJSON(msgs []proto.Message, render func(proto.Message) json.RawMessage) []json.RawMessage {
	if len(msgs) == 0 {
		return nil
	}
	out := make([]json.RawMessage, len(msgs))
	for i, m := range msgs {
		out[i] = render(m)
	}
	return out
}

// MessageJSON renders msg as compact protojson with proto field names,
// bytes fields as r says. A message that protojson cannot render (an Any
// of a type resolver does not know) is kept as {"@type": name, "@error":
// why, "@wire": base64 bytes}, so nothing is lost.
func MessageJSON(msg proto.Message, r Rendering) json.RawMessage {
	resolver := r.Resolver
	if resolver == nil {
		resolver = protoregistry.GlobalTypes
	}
	// AllowPartial: a message missing a proto2 required field is journaled
	// as it is (and protojson skips a costly walk of every dynamic message).
	data, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: r.EmitDefaults, AllowPartial: true, Resolver: resolver}.Marshal(msg)
	if err == nil {
		if r.Bytes == dynamic.BytesText {
			return dynamic.BytesAsText(data, msg.ProtoReflect().Descriptor(), resolver)
		}
		return unspace(data)
	}
	wire, _ := proto.MarshalOptions{Deterministic: true}.Marshal(msg)
	fallback, _ := json.Marshal(map[string]string{
		"@type":  string(msg.ProtoReflect().Descriptor().FullName()),
		"@error": err.Error(),
		"@wire":  base64.StdEncoding.EncodeToString(wire),
	})
	return fallback
}

// protojsonSpaces tells whether this program's protojson puts a space after
// some commas: single-line protojson varies its output on purpose from
// build to build (a space after commas, or none), so that nobody depends on
// its bytes. Journal lines must not vary, so the spaces are taken out.
var protojsonSpaces = func() bool {
	data, _ := protojson.Marshal(&descriptorpb.FieldDescriptorProto{Name: proto.String("a"), Number: proto.Int32(1)})
	return bytes.Contains(data, []byte(", "))
}()

// unspace removes the spaces protojson put after commas (outside strings),
// when this program's protojson puts them in.
func unspace(data []byte) json.RawMessage {
	if !protojsonSpaces {
		return data
	}
	return stripCommaSpaces(data)
}

// stripCommaSpaces removes the spaces that follow a comma outside JSON
// strings.
func stripCommaSpaces(data []byte) []byte {
	out := data[:0:0]
	inString, escaped := false, false
	for i := 0; i < len(data); i++ {
		c := data[i]
		switch {
		case inString && escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case !inString && c == ',':
			out = append(out, c)
			for i+1 < len(data) && data[i+1] == ' ' {
				i++
			}
			continue
		}
		out = append(out, c)
	}
	return out
}
