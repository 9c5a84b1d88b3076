package dynamic

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"
)

// CompileProtoset compiles every .proto file in fsys (paths relative to its
// root, which is also the only import path) and writes the result as a
// deterministic protoset with source info and every import. The same files
// always give the same bytes, so a committed protoset can be checked for
// staleness by comparing bytes.
func CompileProtoset(ctx context.Context, fsys fs.FS, w io.Writer) error {
	var names []string
	err := fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(path, ".proto") {
			names = append(names, path)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("dynamic: find .proto files: %w", err)
	}
	if len(names) == 0 {
		return fmt.Errorf("dynamic: no .proto files found")
	}
	sort.Strings(names)
	src, err := NewSourceFromProtoFiles(ctx, ProtoFilesOptions{FS: fsys}, names...)
	if err != nil {
		return err
	}
	return src.WriteProtoset(w)
}
