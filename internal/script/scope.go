package script

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/dynamic"
)

// msgView is a message with its protojson form computed on first use.
type msgView struct {
	msg   proto.Message
	types dynamic.TypeResolver
	val   any
	err   error
	done  bool
}

func newView(msg proto.Message, types dynamic.TypeResolver) *msgView {
	return &msgView{msg: msg, types: types}
}

// json returns the message as JSON-shaped Go values, with proto field names.
func (v *msgView) json() (any, error) {
	if v == nil {
		return map[string]any{}, nil
	}
	if !v.done {
		v.done = true
		v.val, v.err = messageJSON(v.msg, v.types)
	}
	return v.val, v.err
}

// messageJSON renders msg the way protojson does (proto names, defaults
// left out) and decodes it into maps, lists and json.Numbers.
func messageJSON(msg proto.Message, types dynamic.TypeResolver) (any, error) {
	opts := protojson.MarshalOptions{UseProtoNames: true}
	if types != nil {
		opts.Resolver = types
	}
	b, err := opts.Marshal(msg)
	if err != nil {
		return nil, fmt.Errorf("render %s as JSON: %w", msg.ProtoReflect().Descriptor().FullName(), err)
	}
	return decodeJSON(b)
}

func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// scope is what references evaluate against while a rule runs.
type scope struct {
	req  *msgView
	reqs []*msgView
	i    int
	n    int64
	md   metadata.MD
	peer calls.Peer
	vars map[string]any
	caps map[string]any
	env  func(string) string
}

func peerJSON(p calls.Peer) map[string]any {
	return map[string]any{"id": json.Number(strconv.FormatUint(p.BackchannelID, 10)), "addr": p.Addr}
}

// eval returns the value a reference names.
func (s *scope) eval(r *ref) (any, error) {
	switch r.root {
	case "req":
		v, err := s.req.json()
		if err != nil {
			return nil, err
		}
		return walk(v, r.steps), nil
	case "reqs":
		list := make([]any, len(s.reqs))
		for i, m := range s.reqs {
			v, err := m.json()
			if err != nil {
				return nil, err
			}
			list[i] = v
		}
		return walk(list, r.steps), nil
	case "i":
		return json.Number(strconv.Itoa(s.i)), nil
	case "n":
		return json.Number(strconv.FormatInt(s.n, 10)), nil
	case "meta":
		if len(r.steps) == 0 {
			out := make(map[string]any, len(s.md))
			for k, v := range s.md {
				if len(v) > 0 {
					out[k] = v[0]
				}
			}
			return out, nil
		}
		if v := s.md.Get(r.steps[0].key); len(v) > 0 {
			return v[0], nil
		}
		return nil, nil
	case "peer":
		return walk(peerJSON(s.peer), r.steps), nil
	case "vars":
		return walk(s.vars, r.steps), nil
	case "env":
		if s.env == nil {
			return "", nil
		}
		return s.env(r.steps[0].key), nil
	case "now":
		return time.Now().UTC().Format(time.RFC3339Nano), nil
	case "uuid":
		return newUUID(), nil
	}
	// A captured call result; nil when the step that captures it has not
	// run (an `as` inside `each` read in `end` of an empty stream). Load-time
	// checks make sure the name is declared.
	return walk(s.caps[r.root], r.steps), nil
}

// evalRef evaluates a whole expression: the path (a bytes field's base64
// becomes bytesVal, a binary metadata value is taken as it is), then its
// functions.
func (s *scope) evalRef(r *ref) (any, error) {
	v, err := s.eval(r)
	if err != nil {
		return nil, err
	}
	if r.typ == typeBytes {
		if str, ok := v.(string); ok {
			if r.root == "meta" {
				v = bytesVal(str)
			} else if b, err := decodeBase64(str); err == nil {
				v = bytesVal(b)
			}
		}
	}
	if len(r.stages) == 0 {
		return v, nil
	}
	out, err := r.applyStages(v)
	if err != nil {
		return nil, fmt.Errorf("${%s}: %w", r.src, err)
	}
	return out, nil
}

// render evaluates t: a single reference keeps its value's type, anything
// else becomes a string.
func (s *scope) render(t *template) (any, error) {
	if t.whole() {
		return s.evalRef(t.parts[0].ref)
	}
	var b strings.Builder
	for _, p := range t.parts {
		if p.ref == nil {
			b.WriteString(p.lit)
			continue
		}
		v, err := s.evalRef(p.ref)
		if err != nil {
			return nil, err
		}
		b.WriteString(stringify(v))
	}
	return b.String(), nil
}

// text evaluates t as a string.
func (s *scope) text(t *template) (string, error) {
	v, err := s.render(t)
	if err != nil {
		return "", err
	}
	return stringify(v), nil
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func jsonInt(n int) json.Number { return json.Number(strconv.Itoa(n)) }
