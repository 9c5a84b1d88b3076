package adminpb_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/bcctl/bcctl/internal/protogen"
)

// TestGeneratedCodeIsUpToDate regenerates the package from admin.proto, as
// go generate does, and compares it with the committed files.
func TestGeneratedCodeIsUpToDate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	files, err := protogen.Generate(ctx, os.DirFS("../proto"), []string{"bcctl/admin/v1/admin.proto"},
		protogen.GoPlugins("github.com/bcctl/bcctl/internal/admin/adminpb"), ".")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for name, want := range files {
		names = append(names, name)
		got, err := os.ReadFile(name)
		if err != nil {
			t.Errorf("%s is not committed: run `go generate ./internal/admin/adminpb` (%v)", name, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale: run `go generate ./internal/admin/adminpb`", name)
		}
	}
	committed, _ := filepath.Glob("*.pb.go")
	slices.Sort(names)
	if !slices.Equal(names, committed) {
		t.Errorf("generated %v, committed %v: run `go generate ./internal/admin/adminpb` and remove what it does not write", names, committed)
	}
}
