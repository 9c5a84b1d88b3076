package main

import (
	"io"

	"github.com/spf13/pflag"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"

	"github.com/bcctl/bcctl/internal/dynamic"
)

// FormatFlags choose how messages are read and written: --format json|text
// (requests and responses), --emit-defaults (show fields at their default
// value) and --format-error (print a failed call's status in --format on
// stdout, instead of the human report on stderr).
type FormatFlags struct {
	Format       string
	EmitDefaults bool
	FormatError  bool
	ProtoNames   bool
	Bytes        BytesFlag
}

// AddFlags adds --format, --emit-defaults and --format-error.
func (f *FormatFlags) AddFlags(fs *pflag.FlagSet) {
	f.AddMessageFlags(fs)
	fs.BoolVar(&f.FormatError, "format-error", false, "print a non-OK status in --format on stdout (as google.rpc.Status)")
}

// AddMessageFlags adds --format and --emit-defaults only.
func (f *FormatFlags) AddMessageFlags(fs *pflag.FlagSet) {
	fs.StringVar(&f.Format, "format", "json", "message `format` of requests and responses: json or text (protobuf text, messages separated by 0x1E)")
	fs.BoolVar(&f.EmitDefaults, "emit-defaults", false, "show fields at their default value in every message printed (the reverse calls of -v and -o json too)")
	fs.BoolVar(&f.ProtoNames, "proto-names", false, "use the .proto field names in JSON output instead of lowerCamelCase")
	f.Bytes.AddFlag(fs)
}

// Parsed returns the format, after checking --bytes too.
func (f *FormatFlags) Parsed() (dynamic.Format, error) {
	format, err := dynamic.ParseFormat(f.Format)
	if err != nil {
		return "", usageErrorf("--format %q: want json or text", f.Format)
	}
	if _, err := f.Bytes.Mode(); err != nil {
		return "", err
	}
	return format, nil
}

// BytesFlag is --bytes: how output shows bytes fields. Gitaly's ref and
// branch names are bytes that people read as text; protobuf JSON (and so
// grpcurl) shows them as base64, which stays the default. Requests (-d)
// are protobuf JSON either way.
type BytesFlag struct {
	Bytes string
}

// AddFlag adds --bytes.
func (f *BytesFlag) AddFlag(fs *pflag.FlagSet) {
	fs.StringVar(&f.Bytes, "bytes", string(dynamic.BytesBase64), "how printed messages, the journal and the TUI show `bytes` fields: base64 (protobuf JSON, as grpcurl) or text (UTF-8 bytes as text, other bytes base64)")
}

// Mode returns the parsed --bytes.
func (f *BytesFlag) Mode() (dynamic.BytesMode, error) {
	m, err := dynamic.ParseBytesMode(f.Bytes)
	if err != nil {
		return "", usageErrorf("--bytes %q: want base64 or text", f.Bytes)
	}
	return m, nil
}

// Formatter returns the response formatter.
func (f *FormatFlags) Formatter(resolver dynamic.TypeResolver) (dynamic.Formatter, error) {
	format, err := f.Parsed()
	if err != nil {
		return nil, err
	}
	bytes, err := f.Bytes.Mode()
	if err != nil {
		return nil, err
	}
	return dynamic.NewFormatter(format, resolver, dynamic.FormatOptions{EmitDefaults: f.EmitDefaults, ProtoNames: f.ProtoNames, Bytes: bytes})
}

// RequestParser returns the parser of requests read from r.
func (f *FormatFlags) RequestParser(r io.Reader, resolver dynamic.TypeResolver) (dynamic.RequestParser, error) {
	format, err := f.Parsed()
	if err != nil {
		return nil, err
	}
	return dynamic.NewRequestParser(format, r, resolver)
}

// FormatStatus renders a status in --format, for --format-error: JSON as
// google.rpc.Status with its details decoded, or protobuf text.
func (f *FormatFlags) FormatStatus(st *status.Status, resolver dynamic.TypeResolver) (string, error) {
	format, err := f.Parsed()
	if err != nil {
		return "", err
	}
	if format == dynamic.FormatText {
		b, err := prototext.MarshalOptions{Multiline: true, Resolver: dynamicResolver(resolver)}.Marshal(st.Proto())
		return string(b), err
	}
	return dynamic.StatusJSON(st, resolver, dynamic.FormatOptions{EmitDefaults: f.EmitDefaults, ProtoNames: f.ProtoNames}), nil
}

// dynamicResolver returns resolver, or the program's registry when nil,
// with the program's registry behind it (the google.rpc details).
func dynamicResolver(resolver dynamic.TypeResolver) dynamic.TypeResolver {
	if resolver == nil {
		return globalTypes()
	}
	return dynamic.ChainTypes(resolver, globalTypes())
}
