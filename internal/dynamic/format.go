package dynamic

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// Format is a message format on the command line and in scripts.
type Format string

// The formats bcctl reads and writes.
const (
	// FormatJSON is protobuf's JSON mapping. Requests are concatenated JSON
	// values (whitespace between them is optional).
	FormatJSON Format = "json"
	// FormatText is protobuf's text format. Several messages are separated
	// by the ASCII record separator 0x1E, as grpcurl does.
	FormatText Format = "text"
)

// TextSeparator separates messages in text format, on input and output.
const TextSeparator = '\x1e'

// ParseFormat returns the Format named s ("json" or "text").
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(strings.TrimSpace(s))); f {
	case FormatJSON, FormatText:
		return f, nil
	default:
		return "", fmt.Errorf("dynamic: unknown format %q (want json or text)", s)
	}
}

// RequestParser reads request messages one at a time.
type RequestParser interface {
	// Next fills msg with the next request. It returns io.EOF when there are
	// no more. Errors say which request (counted from 1) was bad and where.
	Next(msg proto.Message) error
	// NumRequests is the number of requests read so far.
	NumRequests() int
}

// NewRequestParser returns a parser for requests in format f read from r.
// resolver resolves types for google.protobuf.Any (nil means
// protoregistry.GlobalTypes).
func NewRequestParser(f Format, r io.Reader, resolver TypeResolver) (RequestParser, error) {
	switch f {
	case FormatJSON, "":
		return NewJSONRequestParser(r, resolver), nil
	case FormatText:
		return NewTextRequestParser(r, resolver), nil
	default:
		return nil, fmt.Errorf("dynamic: unknown format %q (want json or text)", f)
	}
}

type jsonRequestParser struct {
	dec  *json.Decoder
	opts protojson.UnmarshalOptions
	n    int
}

// NewJSONRequestParser reads a stream of concatenated JSON values, each one
// request. When a value does not fit the message, the error names the
// request number and the JSON field path, for example
// `request 2: field "user.labels": ...`.
func NewJSONRequestParser(r io.Reader, resolver TypeResolver) RequestParser {
	dec := json.NewDecoder(r)
	dec.UseNumber()
	return &jsonRequestParser{dec: dec, opts: protojson.UnmarshalOptions{Resolver: orGlobal(resolver)}}
}

func (p *jsonRequestParser) Next(msg proto.Message) error {
	var raw json.RawMessage
	if err := p.dec.Decode(&raw); err != nil {
		if err == io.EOF {
			return io.EOF
		}
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("request %d: invalid JSON: %w", p.n+1, err)
		}
		// The decoder returns the reader's own errors as they are.
		return fmt.Errorf("request %d: read: %w", p.n+1, err)
	}
	p.n++
	if err := p.opts.Unmarshal(raw, msg); err != nil {
		return fmt.Errorf("request %d: %w", p.n, explainJSONError(raw, msg, p.opts, err))
	}
	return nil
}

func (p *jsonRequestParser) NumRequests() int { return p.n }

type textRequestParser struct {
	r    *bufio.Reader
	opts prototext.UnmarshalOptions
	n    int
	done bool
}

// NewTextRequestParser reads requests in protobuf text format separated by
// TextSeparator (0x1E).
func NewTextRequestParser(r io.Reader, resolver TypeResolver) RequestParser {
	return &textRequestParser{r: bufio.NewReader(r), opts: prototext.UnmarshalOptions{Resolver: orGlobal(resolver)}}
}

func (p *textRequestParser) Next(msg proto.Message) error {
	if p.done {
		return io.EOF
	}
	chunk, err := p.r.ReadBytes(TextSeparator)
	if err == io.EOF {
		p.done = true
		if len(bytes.TrimSpace(chunk)) == 0 {
			return io.EOF
		}
	} else if err != nil {
		return fmt.Errorf("request %d: read: %w", p.n+1, err)
	}
	chunk = bytes.TrimSuffix(chunk, []byte{TextSeparator})
	p.n++
	if err := p.opts.Unmarshal(chunk, msg); err != nil {
		return fmt.Errorf("request %d: %w", p.n, err)
	}
	return nil
}

func (p *textRequestParser) NumRequests() int { return p.n }

func orGlobal(r TypeResolver) TypeResolver {
	if r == nil {
		return protoregistry.GlobalTypes
	}
	return r
}

// ParseJSON fills msg from one JSON value, with the same field-path errors
// as the JSON request parser.
func ParseJSON(data []byte, msg proto.Message, resolver TypeResolver) error {
	opts := protojson.UnmarshalOptions{Resolver: orGlobal(resolver)}
	if err := opts.Unmarshal(data, msg); err != nil {
		return explainJSONError(data, msg, opts, err)
	}
	return nil
}

// Formatter renders one message.
type Formatter func(proto.Message) (string, error)

// FormatOptions configures NewFormatter.
type FormatOptions struct {
	// EmitDefaults shows fields at their default value (JSON only; text
	// never shows them).
	EmitDefaults bool
	// ProtoNames uses the .proto field names instead of lowerCamelCase
	// (JSON only).
	ProtoNames bool
	// Indent is the indentation; "" means two spaces. Use Compact for one
	// line per message.
	Indent string
	// Compact writes each message on one line.
	Compact bool
	// Bytes says how bytes fields are shown (JSON only; "" is BytesBase64,
	// as protobuf JSON writes them; the text format writes them as quoted
	// text anyway).
	Bytes BytesMode
}

// NewFormatter returns a Formatter for format f. resolver resolves the
// types inside google.protobuf.Any (nil means protoregistry.GlobalTypes).
func NewFormatter(f Format, resolver TypeResolver, opts FormatOptions) (Formatter, error) {
	indent := opts.Indent
	if indent == "" {
		indent = "  "
	}
	switch f {
	case FormatJSON, "":
		m := protojson.MarshalOptions{
			Multiline:       !opts.Compact,
			Indent:          indent,
			EmitUnpopulated: opts.EmitDefaults,
			UseProtoNames:   opts.ProtoNames,
			Resolver:        orGlobal(resolver),
		}
		if opts.Compact {
			m.Indent = ""
		}
		return func(msg proto.Message) (string, error) {
			data, err := m.Marshal(msg)
			if err != nil {
				return "", err
			}
			if opts.Bytes == BytesText {
				data = BytesAsText(data, msg.ProtoReflect().Descriptor(), m.Resolver)
			}
			return stableJSON(data, opts.Compact, indent), nil
		}, nil
	case FormatText:
		m := prototext.MarshalOptions{Multiline: !opts.Compact, Indent: indent, Resolver: orGlobal(resolver)}
		if opts.Compact {
			m.Indent = ""
		}
		return func(msg proto.Message) (string, error) {
			data, err := m.Marshal(msg)
			if err != nil {
				return "", err
			}
			return strings.TrimRight(string(data), "\n"), nil
		}, nil
	default:
		return nil, fmt.Errorf("dynamic: unknown format %q (want json or text)", f)
	}
}

var errNotJSONObject = errors.New("not a JSON object")

// stableJSON re-spaces protojson's output, which varies its whitespace at
// random to discourage byte comparisons: bcctl's output is meant to be
// diffed, pasted and golden-tested.
func stableJSON(data []byte, compact bool, indent string) string {
	var flat bytes.Buffer
	if err := json.Compact(&flat, data); err != nil {
		return string(data)
	}
	if compact {
		return flat.String()
	}
	var out bytes.Buffer
	if err := json.Indent(&out, flat.Bytes(), "", indent); err != nil {
		return string(data)
	}
	return out.String()
}
