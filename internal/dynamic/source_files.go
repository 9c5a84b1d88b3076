package dynamic

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/bufbuild/protocompile"
	"github.com/bufbuild/protocompile/reporter"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// FileSource is a Source over a fixed set of file descriptors: compiled
// .proto files, protosets, or descriptors a program already has. It never
// does I/O after construction.
type FileSource struct {
	files *protoregistry.Files
	types *dynamicpb.Types
	// roots are the files the source was built from (in the order given),
	// ordered is every file with its imports first.
	roots   []protoreflect.FileDescriptor
	ordered []protoreflect.FileDescriptor
}

var _ Source = (*FileSource)(nil)

// NewSourceFromFiles returns a Source over the given files and everything
// they import (transitively). Two different files with the same path are an
// error.
func NewSourceFromFiles(files ...protoreflect.FileDescriptor) (*FileSource, error) {
	s := &FileSource{files: new(protoregistry.Files), roots: files}
	seen := map[string]protoreflect.FileDescriptor{}
	var add func(fd protoreflect.FileDescriptor) error
	add = func(fd protoreflect.FileDescriptor) error {
		if prev, ok := seen[fd.Path()]; ok {
			if prev != fd && !sameFile(prev, fd) {
				return fmt.Errorf("dynamic: two different files named %q", fd.Path())
			}
			return nil
		}
		seen[fd.Path()] = fd
		imports := fd.Imports()
		for i := range imports.Len() {
			if err := add(imports.Get(i).FileDescriptor); err != nil {
				return err
			}
		}
		if err := s.files.RegisterFile(fd); err != nil {
			return fmt.Errorf("dynamic: register %s: %w", fd.Path(), err)
		}
		s.ordered = append(s.ordered, fd)
		return nil
	}
	for _, fd := range files {
		if err := add(fd); err != nil {
			return nil, err
		}
	}
	s.types = dynamicpb.NewTypes(s.files)
	return s, nil
}

// sameFile reports whether two descriptors describe the same file, which
// happens when one comes from protocompile and the other from the
// generated registry (the well-known types).
func sameFile(a, b protoreflect.FileDescriptor) bool {
	return proto.Equal(protodesc.ToFileDescriptorProto(a), protodesc.ToFileDescriptorProto(b))
}

// ProtoFilesOptions configures NewSourceFromProtoFiles.
type ProtoFilesOptions struct {
	// ImportPaths are the directories that file names (and imports) are
	// relative to. Empty means the current directory.
	ImportPaths []string
	// FS, when set, is read instead of the operating system's file system;
	// ImportPaths are then paths inside FS ("." is its root).
	FS fs.FS
}

// NewSourceFromProtoFiles compiles .proto files with protocompile. The
// well-known types (google/protobuf/*.proto) are built in and need no
// import path. fileNames are relative to one of opts.ImportPaths.
//
// When the files do not compile, the error lists every problem, one per
// line, each as "file:line:col: message"; it wraps ErrCompile.
func NewSourceFromProtoFiles(ctx context.Context, opts ProtoFilesOptions, fileNames ...string) (*FileSource, error) {
	if len(fileNames) == 0 {
		return nil, errors.New("dynamic: no .proto files given")
	}
	resolver := &protocompile.SourceResolver{ImportPaths: opts.ImportPaths}
	if opts.FS == nil {
		fileNames = relativeToImportPaths(opts.ImportPaths, fileNames)
		if err := checkProtoFilesExist(opts.ImportPaths, fileNames); err != nil {
			return nil, err
		}
	}
	if opts.FS != nil {
		fsys := opts.FS
		resolver.Accessor = func(path string) (io.ReadCloser, error) {
			return fsys.Open(strings.TrimPrefix(cleanFSPath(path), "./"))
		}
	}
	var problems, missing []string
	note := func(err error) {
		problems = append(problems, err.Error())
		var pe *fs.PathError
		if errors.As(err, &pe) && errors.Is(pe, fs.ErrNotExist) {
			missing = append(missing, pe.Path)
		}
	}
	compiler := protocompile.Compiler{
		Resolver:       protocompile.WithStandardImports(resolver),
		SourceInfoMode: protocompile.SourceInfoStandard,
		Reporter: reporter.NewReporter(func(err reporter.ErrorWithPos) error {
			note(err)
			return nil // keep going: report every problem
		}, nil),
	}
	compiled, err := compiler.Compile(ctx, fileNames...)
	if err != nil {
		if len(problems) == 0 {
			note(err)
		}
		ce := &CompileError{Problems: problems}
		if opts.FS == nil {
			ce.ImportRoot = importRoot(opts.ImportPaths, fileNames, missing)
		}
		return nil, ce
	}
	files := make([]protoreflect.FileDescriptor, len(compiled))
	for i, f := range compiled {
		files[i] = f
	}
	return NewSourceFromFiles(files...)
}

// relativeToImportPaths rewrites file names given as paths on disk under
// an import path ("protos/acme/users.proto" with import path "protos") to
// their name relative to that import path ("acme/users.proto"), as protoc
// does; protocompile only accepts the second spelling. Other names are
// kept.
func relativeToImportPaths(importPaths, fileNames []string) []string {
	out := make([]string, len(fileNames))
	for i, name := range fileNames {
		out[i] = name
		for _, ip := range importPaths {
			rel, err := filepath.Rel(filepath.Clean(ip), filepath.Clean(name))
			if err != nil || rel == "." || strings.HasPrefix(rel, "..") || filepath.IsAbs(rel) {
				continue
			}
			if _, err := os.Stat(name); err == nil {
				out[i] = filepath.ToSlash(rel)
				break
			}
		}
	}
	return out
}

// cleanFSPath turns an OS-style joined path into an fs.FS path.
func cleanFSPath(p string) string {
	p = strings.ReplaceAll(p, "\\", "/")
	for strings.HasPrefix(p, "./") {
		p = p[2:]
	}
	return p
}

// ErrCompile is wrapped by the errors of NewSourceFromProtoFiles when the
// files do not compile.
var ErrCompile = errors.New("proto files do not compile")

// CompileError lists every problem protocompile found.
type CompileError struct {
	// Problems are "file:line:col: message" lines (or a plain message for
	// problems without a position, like a missing file).
	Problems []string
	// ImportRoot, when not empty, is a directory that is not an import
	// path and under which the imports that could not be found exist: the
	// import path the files need.
	ImportRoot string
}

// Error lists the problems, one per line.
func (e *CompileError) Error() string {
	return fmt.Sprintf("dynamic: %s:\n%s", ErrCompile, strings.Join(e.Problems, "\n"))
}

// Unwrap returns ErrCompile.
func (e *CompileError) Unwrap() error { return ErrCompile }

// NewSourceFromProtosets reads protoset files (serialized
// google.protobuf.FileDescriptorSet, as protoc --descriptor_set_out or
// buf build -o writes them). A set should include its imports; the
// well-known types are taken from the built-in registry when missing.
func NewSourceFromProtosets(fileNames ...string) (*FileSource, error) {
	if len(fileNames) == 0 {
		return nil, errors.New("dynamic: no protoset files given")
	}
	all := new(descriptorpb.FileDescriptorSet)
	for _, name := range fileNames {
		data, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("dynamic: load protoset %s: %w", name, err)
		}
		set := new(descriptorpb.FileDescriptorSet)
		if err := proto.Unmarshal(data, set); err != nil {
			return nil, fmt.Errorf("dynamic: load protoset %s: not a FileDescriptorSet: %w", name, err)
		}
		all.File = append(all.File, set.File...)
	}
	return NewSourceFromFileDescriptorSet(all)
}

// NewSourceFromProtosetBytes is NewSourceFromProtosets for protosets held in
// memory (embedded ones, say).
func NewSourceFromProtosetBytes(data []byte) (*FileSource, error) {
	set := new(descriptorpb.FileDescriptorSet)
	if err := proto.Unmarshal(data, set); err != nil {
		return nil, fmt.Errorf("dynamic: load protoset: not a FileDescriptorSet: %w", err)
	}
	return NewSourceFromFileDescriptorSet(set)
}

// NewSourceFromFileDescriptorSet links the files of set. Files may appear in
// any order and more than once (identical copies are merged); imports
// missing from the set are looked up among the well-known types.
func NewSourceFromFileDescriptorSet(set *descriptorpb.FileDescriptorSet) (*FileSource, error) {
	byName := map[string]*descriptorpb.FileDescriptorProto{}
	var names []string
	for _, fdp := range set.GetFile() {
		name := fdp.GetName()
		if prev, ok := byName[name]; ok {
			if !proto.Equal(prev, fdp) {
				return nil, fmt.Errorf("dynamic: protoset has two different files named %q", name)
			}
			continue
		}
		byName[name] = fdp
		names = append(names, name)
	}
	linked := new(protoregistry.Files)
	built := map[string]protoreflect.FileDescriptor{}
	var link func(name string, path []string) (protoreflect.FileDescriptor, error)
	link = func(name string, path []string) (protoreflect.FileDescriptor, error) {
		if fd, ok := built[name]; ok {
			return fd, nil
		}
		for _, p := range path {
			if p == name {
				return nil, fmt.Errorf("dynamic: protoset: import cycle: %s -> %s", strings.Join(path, " -> "), name)
			}
		}
		fdp, ok := byName[name]
		if !ok {
			if fd, err := protoregistry.GlobalFiles.FindFileByPath(name); err == nil && isWellKnownPath(name) {
				built[name] = fd
				if err := linked.RegisterFile(fd); err != nil {
					return nil, fmt.Errorf("dynamic: protoset: %w", err)
				}
				return fd, nil
			}
			if len(path) == 0 {
				return nil, fmt.Errorf("dynamic: protoset: file %q: %w", name, ErrNotFound)
			}
			return nil, fmt.Errorf("dynamic: protoset: %s imports %q, which the protoset does not contain (build it with its imports)", path[len(path)-1], name)
		}
		for _, dep := range fdp.GetDependency() {
			if _, err := link(dep, append(path, name)); err != nil {
				return nil, err
			}
		}
		fd, err := protodesc.NewFile(fdp, linked)
		if err != nil {
			return nil, fmt.Errorf("dynamic: protoset: %s: %w", name, err)
		}
		if err := linked.RegisterFile(fd); err != nil {
			return nil, fmt.Errorf("dynamic: protoset: %s: %w", name, err)
		}
		built[name] = fd
		return fd, nil
	}
	files := make([]protoreflect.FileDescriptor, 0, len(names))
	for _, name := range names {
		fd, err := link(name, nil)
		if err != nil {
			return nil, err
		}
		files = append(files, fd)
	}
	return NewSourceFromFiles(files...)
}

func isWellKnownPath(name string) bool {
	return strings.HasPrefix(name, "google/protobuf/")
}

// Files returns every file of the source, each after the files it imports.
func (s *FileSource) Files() []protoreflect.FileDescriptor {
	return append([]protoreflect.FileDescriptor(nil), s.ordered...)
}

// Registry returns the source's files as a registry (do not modify it).
func (s *FileSource) Registry() *protoregistry.Files { return s.files }

// ListServices returns the services of every file, sorted.
func (s *FileSource) ListServices(context.Context) ([]protoreflect.FullName, error) {
	var names []protoreflect.FullName
	s.files.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		services := fd.Services()
		for i := range services.Len() {
			names = append(names, services.Get(i).FullName())
		}
		return true
	})
	sort.Slice(names, func(i, j int) bool { return names[i] < names[j] })
	return names, nil
}

// FindSymbol implements Source.
func (s *FileSource) FindSymbol(_ context.Context, name string) (protoreflect.Descriptor, error) {
	return findSymbol(name, func(n protoreflect.FullName) (protoreflect.Descriptor, error) {
		d, err := s.files.FindDescriptorByName(n)
		if errors.Is(err, protoregistry.NotFound) {
			return nil, fmt.Errorf("dynamic: symbol %q: %w", n, ErrNotFound)
		}
		return d, err
	})
}

// Types implements Source.
func (s *FileSource) Types() TypeResolver { return s.types }

// Close implements Source; a FileSource holds nothing.
func (s *FileSource) Close() error { return nil }

// FileDescriptorSet returns the source's files as a FileDescriptorSet, each
// file after its imports (the layout protoc --include_imports writes).
func (s *FileSource) FileDescriptorSet() *descriptorpb.FileDescriptorSet {
	set := new(descriptorpb.FileDescriptorSet)
	for _, fd := range s.ordered {
		set.File = append(set.File, protodesc.ToFileDescriptorProto(fd))
	}
	return set
}

// WriteProtoset writes FileDescriptorSet deterministically, so the same
// files always give the same bytes.
func (s *FileSource) WriteProtoset(w io.Writer) error {
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(s.FileDescriptorSet())
	if err != nil {
		return fmt.Errorf("dynamic: marshal protoset: %w", err)
	}
	_, err = w.Write(data)
	return err
}

// findSymbol looks name up with lookup, accepting the method spellings
// "pkg.Svc/Method" and "/pkg.Svc/Method" and, for sources that only know
// files and services (like many reflection servers), resolving a method
// through its service.
func findSymbol(name string, lookup func(protoreflect.FullName) (protoreflect.Descriptor, error)) (protoreflect.Descriptor, error) {
	full := normalizeSymbol(name)
	if !full.IsValid() {
		return nil, fmt.Errorf("dynamic: %q is not a valid symbol name: %w", name, ErrNotFound)
	}
	d, err := lookup(full)
	if err == nil {
		return d, nil
	}
	if !errors.Is(err, ErrNotFound) || full.Parent() == "" {
		return nil, err
	}
	parent, perr := lookup(full.Parent())
	if perr != nil {
		return nil, err
	}
	if sd, ok := parent.(protoreflect.ServiceDescriptor); ok {
		if md := sd.Methods().ByName(full.Name()); md != nil {
			return md, nil
		}
	}
	return nil, err
}

// normalizeSymbol turns "/pkg.Svc/Method" and "pkg.Svc/Method" into
// "pkg.Svc.Method"; other names are returned as they are.
func normalizeSymbol(name string) protoreflect.FullName {
	name = strings.TrimSpace(name)
	name = strings.TrimPrefix(name, "/")
	name = strings.TrimPrefix(name, ".")
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[:i] + "." + name[i+1:]
	}
	return protoreflect.FullName(name)
}
