package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// placement puts the packages matching pattern at a layer, in a room.
type placement struct {
	pattern string
	layer   int
	room    string
}

func (p placement) String() string { return fmt.Sprintf("layer %d (%s)", p.layer, p.room) }

// place finds where pkg (module-relative) sits.
func place(pkg string) (placement, bool) {
	for _, p := range layers {
		if base, ok := strings.CutSuffix(p.pattern, "/..."); ok {
			if pkg == base || strings.HasPrefix(pkg, base+"/") {
				return p, true
			}
		} else if pkg == p.pattern {
			return p, true
		}
	}
	return placement{}, false
}

// pkgInfo is what `go list -json` says of a package.
type pkgInfo struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

// module is the module path and its packages, listed once.
var module = sync.OnceValues(func() (moduleInfo, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return moduleInfo{}, fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	cmd := exec.Command("go", "list", "-m")
	cmd.Dir = root
	mod, err := cmd.Output()
	if err != nil {
		return moduleInfo{}, fmt.Errorf("go list -m: %w", err)
	}
	cmd = exec.Command("go", "list", "-json=ImportPath,Imports,Deps", "./...")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	data, err := cmd.Output()
	if err != nil {
		return moduleInfo{}, fmt.Errorf("go list ./...: %w: %s", err, stderr.String())
	}
	info := moduleInfo{path: strings.TrimSpace(string(mod))}
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		var p pkgInfo
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return moduleInfo{}, fmt.Errorf("read go list: %w", err)
		}
		info.pkgs = append(info.pkgs, p)
	}
	if len(info.pkgs) == 0 {
		return moduleInfo{}, errors.New("go list ./... listed no packages")
	}
	return info, nil
})

type moduleInfo struct {
	path string
	pkgs []pkgInfo
}

// listModule returns the module path and its packages with their imports
// and dependencies.
func listModule(t *testing.T) (string, []pkgInfo) {
	t.Helper()
	info, err := module()
	if err != nil {
		t.Fatal(err)
	}
	return info.path, info.pkgs
}

func TestEveryPackageHasAPlace(t *testing.T) {
	modPath, pkgs := listModule(t)
	for _, p := range pkgs {
		rel := relative(modPath, p.ImportPath)
		if _, ok := place(rel); !ok {
			t.Errorf("package %s has no place in the layer table: add it to internal/archtest/layers_test.go "+
				"(and to docs/architecture.md) at the lowest layer above everything it imports", rel)
		}
	}
}

func TestImportsFollowTheLayers(t *testing.T) {
	modPath, pkgs := listModule(t)
	for _, p := range pkgs {
		rel := relative(modPath, p.ImportPath)
		from, ok := place(rel)
		if !ok {
			continue // TestEveryPackageHasAPlace says so
		}
		for _, imp := range p.Imports {
			if !inModule(modPath, imp) {
				continue
			}
			irel := relative(modPath, imp)
			to, ok := place(irel)
			if !ok {
				continue
			}
			if !mayImport(from, to) {
				t.Errorf("%s, %s, imports %s, %s: a package may import only lower layers or its own room (docs/architecture.md)",
					rel, from, irel, to)
			}
		}
	}
}

func mayImport(from, to placement) bool {
	return to.layer < from.layer || (to.layer == from.layer && to.room == from.room)
}

func TestLibrariesStayInTheirRooms(t *testing.T) {
	modPath, pkgs := listModule(t)
	for _, p := range pkgs {
		rel := relative(modPath, p.ImportPath)
		from, ok := place(rel)
		if !ok {
			continue
		}
		for _, imp := range p.Imports {
			for prefix, rooms := range thirdParty {
				if strings.HasPrefix(imp, prefix) && !slices.Contains(rooms, from.room) {
					t.Errorf("%s (room %s) imports %s: only %s may (docs/architecture.md)", rel, from.room, imp, strings.Join(rooms, ", "))
				}
			}
		}
	}
}

func TestPublicPackagesDependOnNothingInternal(t *testing.T) {
	modPath, pkgs := listModule(t)
	seen := 0
	for _, p := range pkgs {
		rel := relative(modPath, p.ImportPath)
		if pl, ok := place(rel); !ok || pl.room != "public" {
			continue
		}
		seen++
		for _, dep := range p.Deps {
			for _, bad := range publicForbidden {
				if strings.HasPrefix(dep, bad) {
					t.Errorf("public package %s depends on %s: public packages import nothing of internal/, cobra or bubbletea, even indirectly", rel, dep)
				}
			}
		}
	}
	if seen == 0 {
		t.Error("no public package found: is the layer table's public room empty?")
	}
}

func inModule(modPath, path string) bool {
	return path == modPath || strings.HasPrefix(path, modPath+"/")
}

// relative is path relative to the module ("" for the module root).
func relative(modPath, path string) string {
	return strings.TrimPrefix(strings.TrimPrefix(path, modPath), "/")
}

func TestMayImport(t *testing.T) {
	// The rule itself: lower layers, or the same room.
	tests := []struct {
		from, to string
		want     bool
	}{
		{"internal/script", "internal/calls", true},
		{"internal/calls", "internal/script", false},
		{"internal/journal", "internal/script", false}, // same layer, other room
		{"internal/tui/queue", "internal/tui/answer", true},
		{"backchannel", "listenmux", true},
		{"backchannel", "internal/words", true}, // by layer; TestPublicPackagesDependOnNothingInternal forbids it
		{"internal/dynamic", "internal/calls", true},
		{"internal/calls", "internal/dynamic", false},
		{"cmd/bcctl", "internal/tui", true},
		{"internal/serve", "internal/admin", false},
	}
	for _, tt := range tests {
		from, ok1 := place(tt.from)
		to, ok2 := place(tt.to)
		if !ok1 || !ok2 {
			t.Fatalf("%s or %s has no place", tt.from, tt.to)
		}
		if got := mayImport(from, to); got != tt.want {
			t.Errorf("mayImport(%s, %s) = %v, want %v", tt.from, tt.to, got, tt.want)
		}
	}
	if _, ok := place("internal/brandnew"); ok {
		t.Error("an unknown package found a place")
	}
}
