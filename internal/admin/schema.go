package admin

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"sync"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/bcctl/bcctl/internal/dynamic"
)

// ServiceName is the full name of the admin service.
const ServiceName = "bcctl.admin.v1.Admin"

// ProtoPath is the admin API's .proto file, relative to the proto root of
// ProtoFS.
const ProtoPath = "bcctl/admin/v1/admin.proto"

//go:embed proto
var protoFS embed.FS

// ProtoFS holds admin.proto at ProtoPath.
var ProtoFS fs.FS = mustSub(protoFS, "proto")

func mustSub(f fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		panic(err)
	}
	return sub
}

var schema = sync.OnceValues(func() (*dynamic.FileSource, error) {
	src, err := dynamic.NewSourceFromProtoFiles(context.Background(), dynamic.ProtoFilesOptions{FS: ProtoFS}, ProtoPath)
	if err != nil {
		return nil, fmt.Errorf("admin: the embedded %s does not compile: %w", ProtoPath, err)
	}
	return src, nil
})

// Schema returns the admin API's schema, compiled from the embedded
// .proto once.
func Schema() (*dynamic.FileSource, error) { return schema() }

// Service returns the descriptor of the admin service.
func Service() (protoreflect.ServiceDescriptor, error) {
	src, err := Schema()
	if err != nil {
		return nil, err
	}
	d, err := src.FindSymbol(context.Background(), ServiceName)
	if err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return nil, fmt.Errorf("admin: %s is a %s, not a service", ServiceName, dynamic.Kind(d))
	}
	return sd, nil
}

// method returns the descriptor of one admin method.
func method(name string) (protoreflect.MethodDescriptor, error) {
	sd, err := Service()
	if err != nil {
		return nil, err
	}
	md := sd.Methods().ByName(protoreflect.Name(name))
	if md == nil {
		return nil, fmt.Errorf("admin: %s has no method %s", ServiceName, name)
	}
	return md, nil
}
