package dynamic

import (
	"errors"
	"io/fs"
	"path/filepath"
	"testing"
)

// TestProtoFilesMissing: a file that is not there is said to be missing,
// not to fail to compile.
func TestProtoFilesMissing(t *testing.T) {
	tests := []struct {
		name        string
		importPaths []string
		file        string
		want        string
	}{
		{"no import paths", nil, "nosuch.proto", "dynamic: file nosuch.proto does not exist"},
		{"import paths", []string{corpusDir}, "nosuch.proto", "dynamic: file nosuch.proto is not in the import paths (" + corpusDir + ")"},
		{"a directory", nil, corpusDir, "dynamic: file " + corpusDir + " does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewSourceFromProtoFiles(testContext(t), ProtoFilesOptions{ImportPaths: tt.importPaths}, tt.file)
			var me *MissingFileError
			if !errors.As(err, &me) || !errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrCompile) || err.Error() != tt.want {
				t.Errorf("error = %v, want %q (a *MissingFileError)", err, tt.want)
			}
		})
	}
}

// TestProtoFilesImportRoot: a file named by its path inside a tree, without
// the tree's root as an import path, cannot import its neighbours; the
// error names the directory that would be the import path.
func TestProtoFilesImportRoot(t *testing.T) {
	tests := []struct {
		name        string
		importPaths []string
		file        string
		want        string
	}{
		{"no import path", nil, filepath.Join(corpusDir, "acme", "users.proto"), corpusDir},
		{"a wrong import path", []string{filepath.Join(corpusDir, "acme")}, "users.proto", corpusDir},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewSourceFromProtoFiles(testContext(t), ProtoFilesOptions{ImportPaths: tt.importPaths}, tt.file)
			var ce *CompileError
			if !errors.As(err, &ce) || ce.ImportRoot != tt.want {
				t.Errorf("error = %v (import root %q), want a *CompileError with import root %q", err, importRootOf(ce), tt.want)
			}
		})
	}
}

func importRootOf(ce *CompileError) string {
	if ce == nil {
		return ""
	}
	return ce.ImportRoot
}
