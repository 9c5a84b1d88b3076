package script

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/words"

	// Registers google.rpc.* (ErrorInfo, RetryInfo, BadRequest, ...) so that
	// `fail.details` can use them without the user's schema importing them.
	_ "google.golang.org/genproto/googleapis/rpc/errdetails"
)

// Schema is what a script is validated against and what its messages are
// built with. dynamic.Source satisfies it.
type Schema interface {
	// ListServices returns the fully qualified names of the known services.
	ListServices(ctx context.Context) ([]protoreflect.FullName, error)
	// FindSymbol returns the descriptor of a service, method or message.
	FindSymbol(ctx context.Context, name string) (protoreflect.Descriptor, error)
	// Types resolves message types for google.protobuf.Any values.
	Types() dynamic.TypeResolver
}

var _ Schema = dynamic.Source(nil)

// catalog is the methods of a Schema, looked up once per load.
type catalog struct {
	schema  Schema
	ctx     context.Context
	methods []protoreflect.MethodDescriptor // sorted by full name
	err     error
	loaded  bool
}

func newCatalog(ctx context.Context, s Schema) *catalog {
	return &catalog{schema: s, ctx: ctx}
}

// methodName is the "pkg.Service/Method" form of a method's name.
func methodName(md protoreflect.MethodDescriptor) string {
	return string(md.Parent().FullName()) + "/" + string(md.Name())
}

// normalizeMethod turns "/pkg.Svc/Method" and "pkg.Svc.Method" into
// "pkg.Svc/Method". Globs keep their shape (a "." before the last segment is
// only rewritten when there is no "/").
func normalizeMethod(s string) string {
	s = strings.TrimPrefix(strings.TrimSpace(s), "/")
	if !strings.Contains(s, "/") {
		if i := strings.LastIndexByte(s, '.'); i > 0 {
			s = s[:i] + "/" + s[i+1:]
		}
	}
	return s
}

func (c *catalog) all() ([]protoreflect.MethodDescriptor, error) {
	if c.loaded {
		return c.methods, c.err
	}
	c.loaded = true
	services, err := c.schema.ListServices(c.ctx)
	if err != nil {
		c.err = fmt.Errorf("list services: %w", err)
		return nil, c.err
	}
	for _, name := range services {
		d, err := c.schema.FindSymbol(c.ctx, string(name))
		if err != nil {
			c.err = fmt.Errorf("find service %s: %w", name, err)
			return nil, c.err
		}
		sd, ok := d.(protoreflect.ServiceDescriptor)
		if !ok {
			continue
		}
		for i := 0; i < sd.Methods().Len(); i++ {
			c.methods = append(c.methods, sd.Methods().Get(i))
		}
	}
	sort.Slice(c.methods, func(i, j int) bool { return methodName(c.methods[i]) < methodName(c.methods[j]) })
	return c.methods, nil
}

// names lists every known "pkg.Svc/Method".
func (c *catalog) names() []string {
	ms, _ := c.all()
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = methodName(m)
	}
	return out
}

// resolve finds the methods a pattern names: one for a full name, every
// match for a glob. The error explains a miss with the closest names.
func (c *catalog) resolve(pattern string) ([]protoreflect.MethodDescriptor, error) {
	name := normalizeMethod(pattern)
	if isGlob(name) {
		g, err := compileGlob(name, true)
		if err != nil {
			return nil, err
		}
		ms, err := c.all()
		if err != nil {
			return nil, err
		}
		var out []protoreflect.MethodDescriptor
		for _, m := range ms {
			if g.MatchString(methodName(m)) {
				out = append(out, m)
			}
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("method pattern %q matches no known method%s", pattern, c.hint(name))
		}
		return out, nil
	}
	d, err := c.schema.FindSymbol(c.ctx, name)
	if err == nil {
		if md, ok := d.(protoreflect.MethodDescriptor); ok {
			return []protoreflect.MethodDescriptor{md}, nil
		}
		return nil, fmt.Errorf("%q is a %s, not a method%s", pattern, dynamic.Kind(d), c.hint(name))
	}
	if !errors.Is(err, dynamic.ErrNotFound) && !errors.Is(err, protoregistry.NotFound) {
		return nil, fmt.Errorf("look up method %q: %w", pattern, err)
	}
	return nil, fmt.Errorf("unknown method %q%s", pattern, c.hint(name))
}

// hint suggests methods near name: the service's own methods when the
// service exists, else the closest full names.
func (c *catalog) hint(name string) string {
	all := c.names()
	if len(all) == 0 {
		return " (the schema has no services)"
	}
	near, service := dynamic.SuggestMethods(name, all)
	if hint := words.Suggest(near); hint != "" {
		return hint
	}
	if len(service) > 0 {
		svc, _, _ := strings.Cut(name, "/")
		short := make([]string, len(service))
		for i, m := range service {
			_, short[i], _ = strings.Cut(m, "/")
		}
		return "; " + svc + " has " + strings.Join(short, ", ")
	}
	var services []string
	seen := map[string]bool{}
	for _, n := range all {
		s, _, _ := strings.Cut(n, "/")
		if !seen[s] {
			seen[s] = true
			services = append(services, s)
		}
	}
	if len(services) <= 12 {
		return "; known services: " + strings.Join(services, ", ")
	}
	return ""
}

// globalTypes resolves the types linked into bcctl (google.rpc error
// details, well-known types) when the schema does not know a type.
var globalTypes = protoregistry.GlobalTypes

// chainTypes resolves with the schema first and the linked-in types second.
type chainTypes struct{ first, second dynamic.TypeResolver }

func withGlobalTypes(t dynamic.TypeResolver) dynamic.TypeResolver {
	if t == nil {
		return protoregistry.GlobalTypes
	}
	return chainTypes{t, protoregistry.GlobalTypes}
}

func (c chainTypes) FindMessageByName(name protoreflect.FullName) (protoreflect.MessageType, error) {
	if mt, err := c.first.FindMessageByName(name); err == nil {
		return mt, nil
	}
	return c.second.FindMessageByName(name)
}

func (c chainTypes) FindMessageByURL(url string) (protoreflect.MessageType, error) {
	if mt, err := c.first.FindMessageByURL(url); err == nil {
		return mt, nil
	}
	return c.second.FindMessageByURL(url)
}

func (c chainTypes) FindExtensionByName(name protoreflect.FullName) (protoreflect.ExtensionType, error) {
	if xt, err := c.first.FindExtensionByName(name); err == nil {
		return xt, nil
	}
	return c.second.FindExtensionByName(name)
}

func (c chainTypes) FindExtensionByNumber(msg protoreflect.FullName, num protoreflect.FieldNumber) (protoreflect.ExtensionType, error) {
	if xt, err := c.first.FindExtensionByNumber(msg, num); err == nil {
		return xt, nil
	}
	return c.second.FindExtensionByNumber(msg, num)
}
