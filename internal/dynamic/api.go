package dynamic

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/bcctl/bcctl/internal/calls"
)

// ErrNotFound is wrapped by errors for symbols, methods and types a Source
// does not know.
var ErrNotFound = errors.New("not found")

// notFoundError is an error whose message already says what was not found:
// it wraps ErrNotFound without repeating it.
type notFoundError struct{ msg string }

func (e *notFoundError) Error() string { return e.msg }
func (e *notFoundError) Unwrap() error { return ErrNotFound }

// notFound returns an error with the message of format and args that wraps
// ErrNotFound.
func notFound(format string, args ...any) error {
	return &notFoundError{msg: fmt.Sprintf(format, args...)}
}

// Source is where bcctl finds schemas: .proto files, protoset files, server
// reflection (possibly over a backchannel), or a composite of those.
//
// Every implementation is safe for concurrent use.
type Source interface {
	// ListServices returns the fully qualified names of the services the
	// source knows, sorted.
	ListServices(ctx context.Context) ([]protoreflect.FullName, error)
	// FindSymbol returns the descriptor of a fully qualified service,
	// method, message, enum or extension. A method may be written as
	// "pkg.Service.Method" or "pkg.Service/Method". The error wraps
	// ErrNotFound when the symbol is unknown.
	FindSymbol(ctx context.Context, name string) (protoreflect.Descriptor, error)
	// Types resolves message and extension types, for google.protobuf.Any
	// values and extensions in JSON and text.
	Types() TypeResolver
	// Close releases what the source holds (a reflection stream, say).
	Close() error
}

// TypeResolver resolves message and extension types by name, as protojson
// and prototext need for Any.
type TypeResolver interface {
	protoregistry.MessageTypeResolver
	protoregistry.ExtensionTypeResolver
}

// Call is one call that the dynamic server hands to a Responder. It covers
// every call kind: for a unary or server-streaming method Recv yields one
// request and then io.EOF.
type Call interface {
	// Context is the call's context; it is done when the caller cancels or
	// the deadline passes.
	Context() context.Context
	// Method is the descriptor of the called method.
	Method() protoreflect.MethodDescriptor
	// Metadata is the incoming request metadata (never nil).
	Metadata() metadata.MD
	// Peer tells who called.
	Peer() calls.Peer
	// Recv returns the next request message, or io.EOF once the caller has
	// half-closed. The message is a new dynamic message of the input type.
	Recv() (proto.Message, error)
	// SetHeader adds header metadata to send with the first message or status.
	SetHeader(md metadata.MD) error
	// SendHeader sends header metadata now.
	SendHeader(md metadata.MD) error
	// Send sends one response message; it must be of the output type (a
	// dynamic message or a generated one with the same full name).
	Send(msg proto.Message) error
	// SetTrailer adds trailer metadata sent with the status.
	SetTrailer(md metadata.MD)
}

// Responder answers the calls of the dynamic server. Respond runs once per
// call; the error it returns becomes the call's status (a *status.Status
// error keeps its code, message and details; nil means OK). Respond is
// called concurrently for concurrent calls.
type Responder interface {
	Respond(call Call) error
}

// ResponderFunc adapts a function to a Responder.
type ResponderFunc func(call Call) error

// Respond calls f(call).
func (f ResponderFunc) Respond(call Call) error { return f(call) }
