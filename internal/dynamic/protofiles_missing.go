package dynamic

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// MissingFileError is the error of NewSourceFromProtoFiles for a file that
// is not in any import path (or, without import paths, does not exist). It
// wraps fs.ErrNotExist.
type MissingFileError struct {
	// Name is the file as given.
	Name string
	// ImportPaths are the directories it was looked for in; empty means
	// the current directory.
	ImportPaths []string
}

func (e *MissingFileError) Error() string {
	if len(e.ImportPaths) == 0 {
		return fmt.Sprintf("dynamic: file %s does not exist", e.Name)
	}
	return fmt.Sprintf("dynamic: file %s is not in the import paths (%s)", e.Name, strings.Join(e.ImportPaths, ", "))
}

// Unwrap returns fs.ErrNotExist.
func (e *MissingFileError) Unwrap() error { return fs.ErrNotExist }

// checkProtoFilesExist returns a *MissingFileError for the first file that
// the compiler would not find, so that a missing file is not reported as a
// file that does not compile.
func checkProtoFilesExist(importPaths, fileNames []string) error {
	for _, name := range fileNames {
		if _, ok := findProtoFile(importPaths, name); !ok {
			return &MissingFileError{Name: name, ImportPaths: importPaths}
		}
	}
	return nil
}

// findProtoFile returns where on disk name is found, as the compiler looks
// for it: in each import path, or as given without any.
func findProtoFile(importPaths []string, name string) (string, bool) {
	candidates := []string{name}
	if len(importPaths) > 0 {
		candidates = candidates[:0]
		for _, ip := range importPaths {
			candidates = append(candidates, filepath.Join(ip, name))
		}
	}
	for _, c := range candidates {
		if fi, err := os.Stat(c); err == nil && !fi.IsDir() {
			return c, true
		}
	}
	return "", false
}

// importRoot returns a directory above one of the files under which every
// import in missing exists, or "" when there is none. missing are the paths
// the compiler could not open: the imports, joined to an import path when
// there are import paths.
func importRoot(importPaths, fileNames, missing []string) string {
	if len(missing) == 0 {
		return ""
	}
	imports := make([]string, len(missing))
	for i, p := range missing {
		imports[i] = p
		for _, ip := range importPaths {
			if rel, err := filepath.Rel(ip, p); err == nil && !strings.HasPrefix(rel, "..") {
				imports[i] = rel
				break
			}
		}
	}
	for _, name := range fileNames {
		path, ok := findProtoFile(importPaths, name)
		if !ok {
			continue
		}
		for dir := filepath.Dir(path); ; dir = filepath.Dir(dir) {
			if dir != "." && hasAll(dir, imports) {
				return dir
			}
			if parent := filepath.Dir(dir); parent == dir {
				break
			}
		}
	}
	return ""
}

// hasAll reports whether every one of names exists under dir.
func hasAll(dir string, names []string) bool {
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			return false
		}
	}
	return true
}
