package dynamic

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/bcctl/bcctl/internal/words"
)

// FindMethod resolves a method name written as "pkg.Svc/Method",
// "pkg.Svc.Method" or "/pkg.Svc/Method". When the name is unknown, the error
// wraps ErrNotFound and names the closest methods the source does know
// ("did you mean ...?"), or lists the service's methods when only the method
// part is wrong.
func FindMethod(ctx context.Context, src Source, name string) (protoreflect.MethodDescriptor, error) {
	d, err := src.FindSymbol(ctx, name)
	if err == nil {
		md, ok := d.(protoreflect.MethodDescriptor)
		if !ok {
			return nil, fmt.Errorf("dynamic: %q is a %s, not a method", name, Kind(d))
		}
		return md, nil
	}
	if !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	full := normalizeSymbol(name)
	// The service exists but not the method: suggest among its methods.
	if svc, serr := src.FindSymbol(ctx, string(full.Parent())); serr == nil {
		if sd, ok := svc.(protoreflect.ServiceDescriptor); ok {
			var methods []string
			for i := range sd.Methods().Len() {
				methods = append(methods, MethodName(sd.Methods().Get(i)))
			}
			msg := fmt.Sprintf("dynamic: service %s has no method %q", sd.FullName(), string(full.Name()))
			near, _ := SuggestMethods(MethodName(sd)+"/"+string(full.Name()), methods)
			if hint := words.Suggest(near); hint != "" {
				msg += hint
			} else if len(methods) > 0 {
				msg += "; it has " + words.QuoteJoin(methods, ", ")
			}
			return nil, notFound("%s", msg)
		}
	}
	all, lerr := AllMethods(ctx, src)
	if lerr != nil || len(all) == 0 {
		return nil, fmt.Errorf("dynamic: method %q: %w", name, ErrNotFound)
	}
	names := make([]string, len(all))
	for i, md := range all {
		names[i] = MethodName(md)
	}
	want := strings.TrimPrefix(strings.TrimSpace(name), "/")
	if near, _ := SuggestMethods(want, names); len(near) > 0 {
		return nil, notFound("dynamic: method %q not found%s", name, words.Suggest(near))
	}
	return nil, notFound("dynamic: method %q not found (services: %s)", name, strings.Join(serviceNames(all), ", "))
}

// MethodName returns "pkg.Svc/Method" for a method (and "pkg.Svc" for a
// service): the spelling bcctl prints and accepts.
func MethodName(d protoreflect.Descriptor) string {
	if md, ok := d.(protoreflect.MethodDescriptor); ok {
		return string(md.Parent().FullName()) + "/" + string(md.Name())
	}
	return string(d.FullName())
}

// FullMethod returns "/pkg.Svc/Method", the gRPC path of a method.
func FullMethod(md protoreflect.MethodDescriptor) string {
	return "/" + MethodName(md)
}

// AllMethods returns every method of every service src lists, in service
// then declaration order. Services the source lists but cannot describe are
// skipped.
func AllMethods(ctx context.Context, src Source) ([]protoreflect.MethodDescriptor, error) {
	services, err := src.ListServices(ctx)
	if err != nil {
		return nil, err
	}
	var out []protoreflect.MethodDescriptor
	for _, name := range services {
		d, err := src.FindSymbol(ctx, string(name))
		if err != nil {
			continue
		}
		sd, ok := d.(protoreflect.ServiceDescriptor)
		if !ok {
			continue
		}
		for i := range sd.Methods().Len() {
			out = append(out, sd.Methods().Get(i))
		}
	}
	return out, nil
}

// Services returns the descriptors of every service src lists. A listed
// service the source cannot describe is an error.
func Services(ctx context.Context, src Source) ([]protoreflect.ServiceDescriptor, error) {
	names, err := src.ListServices(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]protoreflect.ServiceDescriptor, 0, len(names))
	for _, name := range names {
		d, err := src.FindSymbol(ctx, string(name))
		if err != nil {
			return nil, fmt.Errorf("dynamic: describe service %s: %w", name, err)
		}
		sd, ok := d.(protoreflect.ServiceDescriptor)
		if !ok {
			return nil, fmt.Errorf("dynamic: %s is a %s, not a service", name, Kind(d))
		}
		out = append(out, sd)
	}
	return out, nil
}

func serviceNames(methods []protoreflect.MethodDescriptor) []string {
	var out []string
	seen := map[string]bool{}
	for _, md := range methods {
		n := string(md.Parent().FullName())
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

// Kind names what a descriptor is: "service", "method", "message", "enum",
// "enum value", "field", "extension", "oneof", "file" or "descriptor".
func Kind(d protoreflect.Descriptor) string {
	switch d := d.(type) {
	case protoreflect.MethodDescriptor:
		return "method"
	case protoreflect.ServiceDescriptor:
		return "service"
	case protoreflect.MessageDescriptor:
		return "message"
	case protoreflect.EnumDescriptor:
		return "enum"
	case protoreflect.EnumValueDescriptor:
		return "enum value"
	case protoreflect.FieldDescriptor:
		if d.IsExtension() {
			return "extension"
		}
		return "field"
	case protoreflect.OneofDescriptor:
		return "oneof"
	case protoreflect.FileDescriptor:
		return "file"
	default:
		return "descriptor"
	}
}
