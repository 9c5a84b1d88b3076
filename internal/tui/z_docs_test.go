package tui

import (
	"flag"
	"os"
	"regexp"
	"strings"
	"testing"
)

var captureRE = regexp.MustCompile("(?s)```text golden=(\\S+)\n(.*?)\n```")

// TestDocsShowTheScreens checks that every capture in docs/tui.md is the
// golden file it names, so the page shows the screens as they are. With
// -update (the golden files' flag) it copies the golden files into the page
// (this file sorts last, so the golden files are written first).
func TestDocsShowTheScreens(t *testing.T) {
	const path = "../../docs/tui.md"
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	golden := func(name string) (string, error) {
		b, err := os.ReadFile("testdata/" + name + ".golden")
		return strings.TrimRight(string(b), "\n"), err
	}
	if f := flag.Lookup("update"); f != nil && f.Value.String() == "true" {
		doc = captureRE.ReplaceAllFunc(doc, func(block []byte) []byte {
			name := captureRE.FindSubmatch(block)[1]
			g, err := golden(string(name))
			if err != nil {
				t.Fatal(err)
			}
			return []byte("```text golden=" + string(name) + "\n" + g + "\n```")
		})
		if err := os.WriteFile(path, doc, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	blocks := captureRE.FindAllStringSubmatch(string(doc), -1)
	if len(blocks) < 10 {
		t.Fatalf("docs/tui.md shows %d screens, want every screen", len(blocks))
	}
	for _, b := range blocks {
		want, err := golden(b[1])
		if err != nil {
			t.Errorf("docs/tui.md shows %s: %v", b[1], err)
			continue
		}
		if b[2] != want {
			t.Errorf("docs/tui.md's capture of %s differs from testdata/%s.golden (go test ./internal/tui -update copies it)", b[1], b[1])
		}
	}
}
