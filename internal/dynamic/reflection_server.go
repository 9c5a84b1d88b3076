package dynamic

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"
)

// RegisterSource serves every service of src on reg, answered by r (see
// RegisterServices), together with server reflection (v1 and v1alpha) for
// that schema (every file of src when it is a *FileSource, services' files
// otherwise) and the grpc.health.v1 health service, which reports every
// service (and the server, "") as SERVING. It returns the health server so
// the caller can change statuses (to NOT_SERVING on shutdown, say).
func RegisterSource(ctx context.Context, reg grpc.ServiceRegistrar, src Source, r Responder, opts ...ServerOption) (*health.Server, error) {
	services, err := Services(ctx, src)
	if err != nil {
		return nil, fmt.Errorf("dynamic: serve source: %w", err)
	}
	if err := RegisterServices(reg, services, r, opts...); err != nil {
		return nil, err
	}
	var files []protoreflect.FileDescriptor
	if fs, ok := src.(interface {
		Files() []protoreflect.FileDescriptor
	}); ok {
		files = fs.Files()
	}
	RegisterReflection(reg, services, files...)
	return RegisterHealth(reg, services), nil
}

// RegisterReflection serves grpc.reflection.v1 and v1alpha on reg for the
// schema of services (their files and everything those import) and of
// files (say the files that define error details no service mentions), so
// grpcurl and bcctl can list and describe them. When reg is a *grpc.Server (or
// anything else that can list its services), the listed services are the
// ones it really serves, and descriptors of services compiled into the
// program (health, reflection) are found in the program's registry;
// otherwise the listed services are services plus health and reflection.
func RegisterReflection(reg grpc.ServiceRegistrar, services []protoreflect.ServiceDescriptor, files ...protoreflect.FileDescriptor) {
	registry := new(protoregistry.Files)
	seen := map[string]bool{}
	var add func(fd protoreflect.FileDescriptor)
	add = func(fd protoreflect.FileDescriptor) {
		if seen[fd.Path()] {
			return
		}
		seen[fd.Path()] = true
		imports := fd.Imports()
		for i := range imports.Len() {
			add(imports.Get(i).FileDescriptor)
		}
		// A conflict means another file already defines the symbols; the
		// first one wins, as in any registry.
		_ = registry.RegisterFile(fd)
	}
	for _, sd := range services {
		add(sd.ParentFile())
	}
	for _, fd := range files {
		add(fd)
	}
	var provider reflection.ServiceInfoProvider
	if p, ok := reg.(reflection.ServiceInfoProvider); ok {
		provider = p
	} else {
		provider = staticServices(services)
	}
	opts := reflection.ServerOptions{
		Services:           provider,
		DescriptorResolver: fallbackFiles{local: registry, provider: provider},
		ExtensionResolver:  extensionsOf(registry),
	}
	reflectionv1.RegisterServerReflectionServer(reg, reflection.NewServerV1(opts))
	reflectionv1alpha.RegisterServerReflectionServer(reg, reflection.NewServer(opts))
}

// RegisterHealth serves grpc.health.v1.Health on reg with the server ("")
// and every service SERVING.
func RegisterHealth(reg grpc.ServiceRegistrar, services []protoreflect.ServiceDescriptor) *health.Server {
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	for _, sd := range services {
		hs.SetServingStatus(string(sd.FullName()), healthpb.HealthCheckResponse_SERVING)
	}
	healthpb.RegisterHealthServer(reg, hs)
	return hs
}

// staticServices lists services plus health and reflection, for registrars
// that cannot list what they serve.
type staticServices []protoreflect.ServiceDescriptor

func (s staticServices) GetServiceInfo() map[string]grpc.ServiceInfo {
	out := map[string]grpc.ServiceInfo{
		healthpb.Health_ServiceDesc.ServiceName:                    {},
		reflectionv1.ServerReflection_ServiceDesc.ServiceName:      {},
		reflectionv1alpha.ServerReflection_ServiceDesc.ServiceName: {},
	}
	for _, sd := range s {
		var methods []grpc.MethodInfo
		for i := range sd.Methods().Len() {
			md := sd.Methods().Get(i)
			methods = append(methods, grpc.MethodInfo{
				Name:           string(md.Name()),
				IsClientStream: md.IsStreamingClient(),
				IsServerStream: md.IsStreamingServer(),
			})
		}
		out[string(sd.FullName())] = grpc.ServiceInfo{Methods: methods, Metadata: sd.ParentFile().Path()}
	}
	return out
}

// fallbackFiles resolves from the schema's files first, then from the
// program's own registry, but only for files that define a service the
// server really serves (health, reflection) or that such a file imports:
// the program's other compiled-in types are not part of the schema.
type fallbackFiles struct {
	local    *protoregistry.Files
	provider reflection.ServiceInfoProvider
}

// servedGlobalFile reports whether fd is a compiled-in file the server
// needs to describe its own services.
func (f fallbackFiles) servedGlobalFile(fd protoreflect.FileDescriptor) bool {
	allowed := map[string]bool{}
	var add func(fd protoreflect.FileDescriptor)
	add = func(fd protoreflect.FileDescriptor) {
		if allowed[fd.Path()] {
			return
		}
		allowed[fd.Path()] = true
		for i := range fd.Imports().Len() {
			add(fd.Imports().Get(i).FileDescriptor)
		}
	}
	for name := range f.provider.GetServiceInfo() {
		if _, err := f.local.FindDescriptorByName(protoreflect.FullName(name)); err == nil {
			continue
		}
		if d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(name)); err == nil {
			add(d.ParentFile())
		}
	}
	return allowed[fd.Path()]
}

func (f fallbackFiles) FindFileByPath(path string) (protoreflect.FileDescriptor, error) {
	fd, err := f.local.FindFileByPath(path)
	if !errors.Is(err, protoregistry.NotFound) {
		return fd, err
	}
	if fd, err := protoregistry.GlobalFiles.FindFileByPath(path); err == nil && f.servedGlobalFile(fd) {
		return fd, nil
	}
	return nil, protoregistry.NotFound
}

func (f fallbackFiles) FindDescriptorByName(name protoreflect.FullName) (protoreflect.Descriptor, error) {
	d, err := f.local.FindDescriptorByName(name)
	if !errors.Is(err, protoregistry.NotFound) {
		return d, err
	}
	if d, err := protoregistry.GlobalFiles.FindDescriptorByName(name); err == nil && f.servedGlobalFile(d.ParentFile()) {
		return d, nil
	}
	return nil, protoregistry.NotFound
}

// localExtensions indexes the extensions the schema declares, by extendee
// and by name.
type localExtensions struct {
	byName    map[protoreflect.FullName]protoreflect.ExtensionType
	byMessage map[protoreflect.FullName][]protoreflect.ExtensionType
}

func extensionsOf(files *protoregistry.Files) *localExtensions {
	le := &localExtensions{
		byName:    map[protoreflect.FullName]protoreflect.ExtensionType{},
		byMessage: map[protoreflect.FullName][]protoreflect.ExtensionType{},
	}
	var addAll func(exts protoreflect.ExtensionDescriptors)
	var addMessages func(msgs protoreflect.MessageDescriptors)
	addAll = func(exts protoreflect.ExtensionDescriptors) {
		for i := range exts.Len() {
			xd := exts.Get(i)
			xt := dynamicpb.NewExtensionType(xd)
			le.byName[xd.FullName()] = xt
			le.byMessage[xd.ContainingMessage().FullName()] = append(le.byMessage[xd.ContainingMessage().FullName()], xt)
		}
	}
	addMessages = func(msgs protoreflect.MessageDescriptors) {
		for i := range msgs.Len() {
			addAll(msgs.Get(i).Extensions())
			addMessages(msgs.Get(i).Messages())
		}
	}
	files.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		addAll(fd.Extensions())
		addMessages(fd.Messages())
		return true
	})
	for _, list := range le.byMessage {
		sort.Slice(list, func(i, j int) bool {
			return list[i].TypeDescriptor().Number() < list[j].TypeDescriptor().Number()
		})
	}
	return le
}

// FindExtensionByName implements reflection.ExtensionResolver over the
// schema's extensions only.
func (le *localExtensions) FindExtensionByName(name protoreflect.FullName) (protoreflect.ExtensionType, error) {
	if xt, ok := le.byName[name]; ok {
		return xt, nil
	}
	return nil, protoregistry.NotFound
}

// FindExtensionByNumber implements reflection.ExtensionResolver.
func (le *localExtensions) FindExtensionByNumber(message protoreflect.FullName, field protoreflect.FieldNumber) (protoreflect.ExtensionType, error) {
	for _, xt := range le.byMessage[message] {
		if xt.TypeDescriptor().Number() == field {
			return xt, nil
		}
	}
	return nil, protoregistry.NotFound
}

// RangeExtensionsByMessage implements reflection.ExtensionResolver.
func (le *localExtensions) RangeExtensionsByMessage(message protoreflect.FullName, fn func(protoreflect.ExtensionType) bool) {
	for _, xt := range le.byMessage[message] {
		if !fn(xt) {
			return
		}
	}
}
