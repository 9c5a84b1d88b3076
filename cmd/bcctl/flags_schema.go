package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/bcctl/bcctl/internal/client"
	"github.com/bcctl/bcctl/internal/dynamic"
)

// SchemaFlags say where a schema comes from: .proto files (--proto with
// --import-path), protoset files (--protoset), and server reflection
// (--use-reflection: on by default unless files are given; with files, the
// files are the fallback for what reflection does not know, as in grpcurl).
// Unlike grpcurl, --proto and --protoset may be combined.
type SchemaFlags struct {
	Protos        []string
	ImportPaths   []string
	Protosets     []string
	UseReflection bool

	prefix        string
	reflectionSet func() bool
}

// AddFlags adds --proto, --import-path, --protoset and --use-reflection.
func (s *SchemaFlags) AddFlags(fs *pflag.FlagSet) {
	s.addFileFlags(fs, "", "")
	fs.BoolVar(&s.UseReflection, "use-reflection", false, "resolve the schema by server reflection (on unless --proto or --protoset is given; with them, reflection first and the files as fallback)")
	s.reflectionSet = func() bool { return fs.Changed("use-reflection") }
}

// AddFileFlags adds --proto, --import-path and --protoset only (for a
// server, which has no server to reflect on).
func (s *SchemaFlags) AddFileFlags(fs *pflag.FlagSet) {
	s.addFileFlags(fs, "", "")
}

// AddBackchannelFlags adds --backchannel-proto, --backchannel-import-path and
// --backchannel-protoset: the schema of the services bcctl hosts on its
// backchannel.
func (s *SchemaFlags) AddBackchannelFlags(fs *pflag.FlagSet) {
	s.addFileFlags(fs, "backchannel-", " of the services hosted on the backchannel (default: the forward schema)")
}

func (s *SchemaFlags) addFileFlags(fs *pflag.FlagSet, prefix, what string) {
	s.prefix = prefix
	fs.StringArrayVar(&s.Protos, prefix+"proto", nil, "`file`.proto"+what+", relative to an import path (repeatable)")
	fs.StringArrayVar(&s.ImportPaths, prefix+"import-path", nil, "`dir`ectory to resolve .proto files and imports in (repeatable; default: the current directory)")
	fs.StringArrayVar(&s.Protosets, prefix+"protoset", nil, "protoset `file` (a FileDescriptorSet)"+what+" (repeatable)")
}

// HasFiles reports whether .proto or protoset files were given.
func (s *SchemaFlags) HasFiles() bool { return len(s.Protos) > 0 || len(s.Protosets) > 0 }

// Reflection reports whether reflection is to be used: --use-reflection
// as given, or, when not given, only when no files are.
func (s *SchemaFlags) Reflection() bool {
	if s.reflectionSet != nil && s.reflectionSet() {
		return s.UseReflection
	}
	return !s.HasFiles()
}

// Validate checks the flags on their own.
func (s *SchemaFlags) Validate() error {
	if len(s.ImportPaths) > 0 && len(s.Protos) == 0 {
		return usageErrorf("--%simport-path is only used with --%sproto", s.prefix, s.prefix)
	}
	if s.reflectionSet != nil && s.reflectionSet() && !s.UseReflection && !s.HasFiles() {
		return usageErrorf("--use-reflection=false needs a schema from --proto or --protoset")
	}
	return nil
}

// FileSource loads the .proto and protoset files; nil when none are given.
// .proto files and protosets together make one source.
func (s *SchemaFlags) FileSource(ctx context.Context) (*dynamic.FileSource, error) {
	if !s.HasFiles() {
		return nil, nil
	}
	var files []*dynamic.FileSource
	if len(s.Protos) > 0 {
		src, err := dynamic.NewSourceFromProtoFiles(ctx, dynamic.ProtoFilesOptions{ImportPaths: s.ImportPaths}, s.Protos...)
		if err != nil {
			msg := fmt.Sprintf("--%sproto: %s", s.prefix, trimPkg(err))
			var ce *dynamic.CompileError
			if errors.As(err, &ce) && ce.ImportRoot != "" {
				msg += fmt.Sprintf("\n(the imports are found under %s: add --%simport-path %s)", ce.ImportRoot, s.prefix, ce.ImportRoot)
			}
			return nil, &shownError{msg: msg, err: err}
		}
		files = append(files, src)
	}
	if len(s.Protosets) > 0 {
		src, err := dynamic.NewSourceFromProtosets(s.Protosets...)
		if err != nil {
			return nil, fmt.Errorf("--%sprotoset: %s", s.prefix, trimPkg(err))
		}
		files = append(files, src)
	}
	if len(files) == 1 {
		return files[0], nil
	}
	var all []protoFile
	for _, f := range files {
		all = append(all, f.Files()...)
	}
	merged, err := dynamic.NewSourceFromFiles(all...)
	if err != nil {
		return nil, fmt.Errorf("--%sproto and --%sprotoset do not fit together: %w", s.prefix, s.prefix, err)
	}
	return merged, nil
}

// Combine is the schema of the flags from files already loaded (nil when
// none) and, with reflection, the server at cc (md: the reflection
// headers).
func (s *SchemaFlags) Combine(ctx context.Context, files *dynamic.FileSource, cc grpc.ClientConnInterface, md metadata.MD) (dynamic.Source, error) {
	return client.ForwardSource(ctx, files, s.Reflection(), cc, md)
}

// files is FileSource as a client session loads it; nil when no files
// are given.
func (s *SchemaFlags) files() func(context.Context) (*dynamic.FileSource, error) {
	if !s.HasFiles() {
		return nil
	}
	return s.FileSource
}

type protoFile = protoreflect.FileDescriptor
