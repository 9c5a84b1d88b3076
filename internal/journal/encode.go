package journal

import (
	"bytes"
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// AppendJSON appends e as one line of JSON (without the newline): the bytes
// json.Marshal gives, written without reflection. The journal writes an
// entry for every call, and encoding/json, which also re-checks every
// message already rendered as JSON, was the larger part of that cost. The
// rare parts of an entry (bcctl proxy's, sidechannels) still go through
// encoding/json. The messages (Requests, Responses, Status.Details) must be
// valid JSON, as MessageJSON renders them; one that holds whitespace is
// compacted.
func (e *Entry) AppendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"id":`...)
	b = strconv.AppendUint(b, e.ID, 10)
	if e.Cause != 0 {
		b = append(b, `,"cause":`...)
		b = strconv.AppendUint(b, e.Cause, 10)
	}
	b = append(b, `,"time":`...)
	b, err := appendTime(b, e.Time)
	if err != nil {
		return b, err
	}
	b = appendField(b, "dir", e.Dir)
	b = appendField(b, "origin", e.Origin)
	if e.By != "" {
		b = appendField(b, "by", e.By)
	}
	if e.Peer != nil {
		b = append(b, `,"peer":{`...)
		comma := false
		if e.Peer.ID != 0 {
			b = append(b, `"id":`...)
			b = strconv.AppendUint(b, e.Peer.ID, 10)
			comma = true
		}
		if e.Peer.Addr != "" {
			if comma {
				b = append(b, ',')
			}
			b = append(b, `"addr":`...)
			b = appendString(b, e.Peer.Addr)
		}
		b = append(b, '}')
	}
	b = appendField(b, "method", e.Method)
	b = appendMetadata(b, "metadata", e.Metadata)
	if b, err = appendMessages(b, "requests", e.Requests); err != nil {
		return b, err
	}
	b = appendMetadata(b, "header", e.Header)
	if b, err = appendMessages(b, "responses", e.Responses); err != nil {
		return b, err
	}
	b = appendMetadata(b, "trailer", e.Trailer)
	if e.Status != nil {
		b = append(b, `,"status":{"code":`...)
		b = appendString(b, e.Status.Code)
		if e.Status.Message != "" {
			b = appendField(b, "message", e.Status.Message)
		}
		if b, err = appendMessages(b, "details", e.Status.Details); err != nil {
			return b, err
		}
		b = append(b, '}')
	}
	b = append(b, `,"duration_ms":`...)
	if b, err = appendFloat(b, e.DurationMS); err != nil {
		return b, err
	}
	if e.Rule != nil {
		b = append(b, `,"rule":{"name":`...)
		b = appendString(b, e.Rule.Name)
		if e.Rule.Pos != "" {
			b = appendField(b, "pos", e.Rule.Pos)
		}
		b = append(b, '}')
	}
	if e.Step != "" {
		b = appendField(b, "step", e.Step)
	}
	for _, rare := range []struct {
		name string
		v    any
		set  bool
	}{
		{"relay", e.Relay, e.Relay != nil},
		{"stream", e.Stream, e.Stream != nil},
		{"sidechannel", e.Sidechannel, e.Sidechannel != nil},
	} {
		if !rare.set {
			continue
		}
		data, err := json.Marshal(rare.v)
		if err != nil {
			return b, err
		}
		b = append(b, `,"`...)
		b = append(b, rare.name...)
		b = append(b, `":`...)
		b = append(b, data...)
	}
	return append(b, '}'), nil
}

// appendField appends ,"name":"value".
func appendField(b []byte, name, value string) []byte {
	b = append(b, `,"`...)
	b = append(b, name...)
	b = append(b, `":`...)
	return appendString(b, value)
}

// appendMetadata appends ,"name":{...} with the keys sorted; nothing for an
// empty map.
func appendMetadata(b []byte, name string, md map[string][]string) []byte {
	if len(md) == 0 {
		return b
	}
	b = append(b, `,"`...)
	b = append(b, name...)
	b = append(b, `":{`...)
	var few [8]string
	keys := few[:0]
	for k := range md {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		vs := md[k]
		if vs == nil {
			b = append(b, "null"...)
			continue
		}
		b = append(b, '[')
		for j, v := range vs {
			if j > 0 {
				b = append(b, ',')
			}
			b = appendString(b, v)
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// appendMessages appends ,"name":[...]; nothing for none.
func appendMessages(b []byte, name string, msgs []json.RawMessage) ([]byte, error) {
	if len(msgs) == 0 {
		return b, nil
	}
	b = append(b, `,"`...)
	b = append(b, name...)
	b = append(b, `":[`...)
	for i, m := range msgs {
		if i > 0 {
			b = append(b, ',')
		}
		switch {
		case m == nil:
			b = append(b, "null"...)
		case hasWhitespace(m):
			var buf bytes.Buffer
			if err := json.Compact(&buf, m); err != nil {
				return b, err
			}
			b = append(b, buf.Bytes()...)
		default:
			b = append(b, m...)
		}
	}
	return append(b, ']'), nil
}

// hasWhitespace tells whether data holds a byte JSON counts as
// whitespace.
func hasWhitespace(data []byte) bool {
	for _, c := range data {
		if c <= ' ' && (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			return true
		}
	}
	return false
}

// appendTime appends t as a JSON string, as encoding/json (t.MarshalJSON)
// writes it.
func appendTime(b []byte, t time.Time) ([]byte, error) {
	if _, offset := t.Zone(); t.Year() < 0 || t.Year() > 9999 || offset <= -24*60*60 || offset >= 24*60*60 {
		data, err := t.MarshalJSON() // RFC 3339 cannot write it: the error
		return append(b, data...), err
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), nil
}

// appendFloat appends f as encoding/json does.
func appendFloat(b []byte, f float64) ([]byte, error) {
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) || math.IsInf(f, 0) || math.IsNaN(f) {
		data, err := json.Marshal(f) // exponent form, or the error
		return append(b, data...), err
	}
	return strconv.AppendFloat(b, f, 'f', -1, 64), nil
}

// appendString appends s as a JSON string, escaped as encoding/json
// escapes it (HTML characters too).
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
