package dynamic

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/jhump/protoreflect/v2/grpcreflect"
	"github.com/jhump/protoreflect/v2/protoresolve"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// ErrReflectionNotSupported is wrapped by the errors of a reflection Source
// when the server implements neither grpc.reflection.v1 nor v1alpha.
var ErrReflectionNotSupported = errors.New("server does not support the reflection API")

// ReflectionSource is a Source that asks a server through its reflection
// service (grpc.reflection.v1, falling back to v1alpha for older servers).
// Descriptors are fetched on demand and cached.
type ReflectionSource struct {
	client   *grpcreflect.Client
	resolver protoresolve.Resolver
	types    TypeResolver
	cancel   context.CancelFunc
	once     sync.Once
}

var _ Source = (*ReflectionSource)(nil)

// NewSourceFromReflection returns a Source that queries the reflection
// service of the server behind cc, which may be any connection: a
// *grpc.ClientConn, or a backchannel connection to reflect on a peer. md
// is sent with every reflection request (grpcurl's -reflect-header); it may
// be nil. The source's reflection stream lives until ctx is done or Close is
// called. Nothing is sent until the first method call.
func NewSourceFromReflection(ctx context.Context, cc grpc.ClientConnInterface, md metadata.MD) *ReflectionSource {
	ctx, cancel := context.WithCancel(ctx)
	if md.Len() > 0 {
		ctx = metadata.NewOutgoingContext(ctx, md.Copy())
	}
	client := grpcreflect.NewClientAuto(ctx, cc)
	resolver := client.AsResolver()
	return &ReflectionSource{
		client:   client,
		resolver: resolver,
		types:    &reflectionTypes{inner: resolver.AsTypeResolver()},
		cancel:   cancel,
	}
}

// ListServices implements Source.
func (s *ReflectionSource) ListServices(ctx context.Context) ([]protoreflect.FullName, error) {
	names, err := withContext(ctx, func() ([]protoreflect.FullName, error) { return s.client.ListServices() })
	if err != nil {
		return nil, reflectionError("list services", err)
	}
	sort.Slice(names, func(i, j int) bool { return names[i] < names[j] })
	return names, nil
}

// FindSymbol implements Source.
func (s *ReflectionSource) FindSymbol(ctx context.Context, name string) (protoreflect.Descriptor, error) {
	return findSymbol(name, func(n protoreflect.FullName) (protoreflect.Descriptor, error) {
		d, err := withContext(ctx, func() (protoreflect.Descriptor, error) { return s.resolver.FindDescriptorByName(n) })
		if err != nil {
			return nil, reflectionError(fmt.Sprintf("symbol %q", n), err)
		}
		return d, nil
	})
}

// Types implements Source: types are fetched from the server on demand.
func (s *ReflectionSource) Types() TypeResolver { return s.types }

// Close ends the reflection stream. It is safe to call more than once.
func (s *ReflectionSource) Close() error {
	s.once.Do(func() {
		s.cancel()
		s.client.Reset()
	})
	return nil
}

// withContext runs f, but returns early with ctx's error when ctx ends
// first (the reflection client has no per-call context; f then finishes when
// the server answers or the source is closed).
func withContext[T any](ctx context.Context, f func() (T, error)) (T, error) {
	if ctx.Done() == nil {
		return f()
	}
	if err := ctx.Err(); err != nil {
		// Ended already: do not ask (were the answer quick, the select
		// below would pick at random between it and the end).
		var zero T
		return zero, err
	}
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := f()
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// reflectionError wraps err with what was asked, mapping "not found" to
// ErrNotFound and a missing reflection service to ErrReflectionNotSupported.
func reflectionError(what string, err error) error {
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("dynamic: reflection: %s: %w", what, err)
	case status.Code(err) == codes.Unimplemented:
		return fmt.Errorf("dynamic: reflection: %s: %w (%v)", what, ErrReflectionNotSupported, status.Convert(err).Message())
	case errors.Is(err, protoregistry.NotFound), grpcreflect.IsElementNotFoundError(err), status.Code(err) == codes.NotFound:
		return fmt.Errorf("dynamic: reflection: %s: %w", what, ErrNotFound)
	default:
		return fmt.Errorf("dynamic: reflection: %s: %w", what, err)
	}
}

// reflectionTypes adapts the reflection client's type resolver to
// TypeResolver, keeping protoregistry.NotFound for unknown types (protojson
// and prototext compare with it).
type reflectionTypes struct {
	inner protoresolve.TypeResolver
}

func (t *reflectionTypes) FindMessageByName(name protoreflect.FullName) (protoreflect.MessageType, error) {
	return t.inner.FindMessageByName(name)
}

func (t *reflectionTypes) FindMessageByURL(url string) (protoreflect.MessageType, error) {
	return t.inner.FindMessageByURL(url)
}

func (t *reflectionTypes) FindExtensionByName(name protoreflect.FullName) (protoreflect.ExtensionType, error) {
	return t.inner.FindExtensionByName(name)
}

func (t *reflectionTypes) FindExtensionByNumber(message protoreflect.FullName, field protoreflect.FieldNumber) (protoreflect.ExtensionType, error) {
	return t.inner.FindExtensionByNumber(message, field)
}
