package tui

import (
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
)

const docsPath = "../../docs/tui.md"

var captureRE = regexp.MustCompile("(?s)```text golden=(\\S+)\n(.*?)\n```")

// TestMain runs the tests and then, with -update (the golden files'
// flag), copies the golden files they wrote into docs/tui.md: only once
// every test has run are the golden files current, whatever order the
// tests run in.
func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if code == 0 && updating() {
		if err := updateDocs(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// updating reports whether the tests run with -update.
func updating() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

func goldenScreen(name string) (string, error) {
	b, err := os.ReadFile("testdata/" + name + ".golden")
	return strings.TrimRight(string(b), "\n"), err
}

// updateDocs replaces every capture in docs/tui.md with the golden file it
// names.
func updateDocs() error {
	doc, err := os.ReadFile(docsPath)
	if err != nil {
		return err
	}
	var missing error
	doc = captureRE.ReplaceAllFunc(doc, func(block []byte) []byte {
		name := string(captureRE.FindSubmatch(block)[1])
		g, err := goldenScreen(name)
		if err != nil {
			missing = fmt.Errorf("docs/tui.md shows %s: %w", name, err)
			return block
		}
		return []byte("```text golden=" + name + "\n" + g + "\n```")
	})
	if missing != nil {
		return missing
	}
	return os.WriteFile(docsPath, doc, 0o644)
}

// TestDocsShowTheScreens checks that every capture in docs/tui.md is the
// golden file it names, so the page shows the screens as they are. With
// -update, TestMain rewrites the page once the golden files are written.
func TestDocsShowTheScreens(t *testing.T) {
	if updating() {
		t.Skip("-update: TestMain copies the golden files into docs/tui.md after every test")
	}
	doc, err := os.ReadFile(docsPath)
	if err != nil {
		t.Fatal(err)
	}
	blocks := captureRE.FindAllStringSubmatch(string(doc), -1)
	if len(blocks) < 10 {
		t.Fatalf("docs/tui.md shows %d screens, want every screen", len(blocks))
	}
	for _, b := range blocks {
		want, err := goldenScreen(b[1])
		if err != nil {
			t.Errorf("docs/tui.md shows %s: %v", b[1], err)
			continue
		}
		if b[2] != want {
			t.Errorf("docs/tui.md's capture of %s differs from testdata/%s.golden (go test ./internal/tui -update copies it)", b[1], b[1])
		}
	}
}
