// Package protogen generates Go code from .proto files without protoc:
// protocompile (through internal/dynamic) compiles the files, and the
// protoc plugins, pinned as tools in go.mod, run as `go tool PLUGIN` fed a
// CodeGeneratorRequest on stdin, as protoc would feed them.
//
// internal/cmd/protogen is its command line (for go:generate); the
// staleness tests of generated packages call Generate and compare.
package protogen

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/pluginpb"

	"github.com/bcctl/bcctl/internal/dynamic"
)

// Plugin is one protoc plugin, run as `go tool Tool`.
type Plugin struct {
	// Tool is the plugin's name in go.mod's tool directives
	// ("protoc-gen-go").
	Tool string
	// Parameter is the plugin's parameter ("module=example.com/x").
	Parameter string
}

// GoPlugins are protoc-gen-go and protoc-gen-go-grpc, with module set so
// that a file whose go_package is module lands in the output directory
// itself.
func GoPlugins(module string) []Plugin {
	return []Plugin{
		{Tool: "protoc-gen-go", Parameter: "module=" + module},
		{Tool: "protoc-gen-go-grpc", Parameter: "module=" + module},
	}
}

// Generate compiles files (paths relative to the root of fsys, which is
// also the import path; the well-known types are built in), runs each
// plugin on them, and returns the generated files by name. dir is the
// directory `go tool` runs in: any directory of the module whose go.mod
// pins the plugins.
func Generate(ctx context.Context, fsys fs.FS, files []string, plugins []Plugin, dir string) (map[string][]byte, error) {
	src, err := dynamic.NewSourceFromProtoFiles(ctx, dynamic.ProtoFilesOptions{FS: fsys}, files...)
	if err != nil {
		return nil, fmt.Errorf("protogen: %w", err)
	}
	out := map[string][]byte{}
	for _, p := range plugins {
		req := &pluginpb.CodeGeneratorRequest{
			FileToGenerate: files,
			Parameter:      proto.String(p.Parameter),
			ProtoFile:      src.FileDescriptorSet().File, // every import before its importers
		}
		resp, err := run(ctx, p.Tool, req, dir)
		if err != nil {
			return nil, err
		}
		for _, f := range resp.File {
			if f.GetInsertionPoint() != "" {
				return nil, fmt.Errorf("protogen: %s: insertion points are not supported (%s)", p.Tool, f.GetName())
			}
			if _, dup := out[f.GetName()]; dup {
				return nil, fmt.Errorf("protogen: %s: %s is generated twice", p.Tool, f.GetName())
			}
			out[f.GetName()] = []byte(f.GetContent())
		}
	}
	return out, nil
}

// run runs one plugin on req.
func run(ctx context.Context, tool string, req *pluginpb.CodeGeneratorRequest, dir string) (*pluginpb.CodeGeneratorResponse, error) {
	in, err := proto.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("protogen: encode the request for %s: %w", tool, err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "go", "tool", tool)
	cmd.Dir = dir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(in), &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("protogen: go tool %s: %w: %s", tool, err, strings.TrimSpace(stderr.String()))
	}
	resp := new(pluginpb.CodeGeneratorResponse)
	if err := proto.Unmarshal(stdout.Bytes(), resp); err != nil {
		return nil, fmt.Errorf("protogen: read the response of %s: %w", tool, err)
	}
	if resp.Error != nil {
		return nil, fmt.Errorf("protogen: %s: %s", tool, resp.GetError())
	}
	return resp, nil
}

// Write writes generated files into dir.
func Write(dir string, files map[string][]byte) error {
	for name, data := range files {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("protogen: %w", err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return fmt.Errorf("protogen: %w", err)
		}
	}
	return nil
}
