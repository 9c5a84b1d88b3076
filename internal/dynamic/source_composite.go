package dynamic

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// CompositeSource asks its sources in order; the first one that knows a
// symbol wins. It is how reflection and files combine (grpcurl's
// -use-reflection with -proto): reflection first, files as the fallback.
type CompositeSource struct {
	sources []Source
	types   chainTypes
}

var _ Source = (*CompositeSource)(nil)

// NewCompositeSource returns a Source over sources, asked in the given
// order. Close closes every one of them.
func NewCompositeSource(sources ...Source) *CompositeSource {
	c := &CompositeSource{sources: sources}
	for _, s := range sources {
		c.types = append(c.types, s.Types())
	}
	return c
}

// ListServices returns the union of the services of every source that
// answers. It fails only when every source fails.
func (c *CompositeSource) ListServices(ctx context.Context) ([]protoreflect.FullName, error) {
	seen := map[protoreflect.FullName]bool{}
	var names []protoreflect.FullName
	var errs []error
	for _, s := range c.sources {
		got, err := s.ListServices(ctx)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, n := range got {
			if !seen[n] {
				seen[n] = true
				names = append(names, n)
			}
		}
	}
	if len(errs) == len(c.sources) && len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	sort.Slice(names, func(i, j int) bool { return names[i] < names[j] })
	return names, nil
}

// FindSymbol returns the first source's answer that is not an error. When
// all fail, the error joins theirs (it wraps ErrNotFound when one of them
// did not know the symbol).
func (c *CompositeSource) FindSymbol(ctx context.Context, name string) (protoreflect.Descriptor, error) {
	var errs []error
	for _, s := range c.sources {
		d, err := s.FindSymbol(ctx, name)
		if err == nil {
			return d, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil, fmt.Errorf("dynamic: symbol %q: no sources: %w", name, ErrNotFound)
	}
	return nil, errors.Join(errs...)
}

// Types resolves through each source's types in order.
func (c *CompositeSource) Types() TypeResolver { return c.types }

// Close closes every source and returns their errors joined.
func (c *CompositeSource) Close() error {
	var errs []error
	for _, s := range c.sources {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}

// chainTypes asks each resolver in turn; the first that knows a type wins.
// Unknown types give protoregistry.NotFound, as protojson expects.
type chainTypes []TypeResolver

// ChainTypes returns a TypeResolver that asks each resolver in order. Use it
// to put protoregistry.GlobalTypes behind a Source's types, for example.
func ChainTypes(resolvers ...TypeResolver) TypeResolver { return chainTypes(resolvers) }

func chainFind[T any](c chainTypes, f func(TypeResolver) (T, error)) (T, error) {
	var firstErr error
	for _, r := range c {
		v, err := f(r)
		if err == nil {
			return v, nil
		}
		if firstErr == nil && !errors.Is(err, protoregistry.NotFound) {
			firstErr = err
		}
	}
	var zero T
	if firstErr != nil {
		return zero, firstErr
	}
	return zero, protoregistry.NotFound
}

func (c chainTypes) FindMessageByName(name protoreflect.FullName) (protoreflect.MessageType, error) {
	return chainFind(c, func(r TypeResolver) (protoreflect.MessageType, error) { return r.FindMessageByName(name) })
}

func (c chainTypes) FindMessageByURL(url string) (protoreflect.MessageType, error) {
	return chainFind(c, func(r TypeResolver) (protoreflect.MessageType, error) { return r.FindMessageByURL(url) })
}

func (c chainTypes) FindExtensionByName(name protoreflect.FullName) (protoreflect.ExtensionType, error) {
	return chainFind(c, func(r TypeResolver) (protoreflect.ExtensionType, error) { return r.FindExtensionByName(name) })
}

func (c chainTypes) FindExtensionByNumber(message protoreflect.FullName, field protoreflect.FieldNumber) (protoreflect.ExtensionType, error) {
	return chainFind(c, func(r TypeResolver) (protoreflect.ExtensionType, error) {
		return r.FindExtensionByNumber(message, field)
	})
}
