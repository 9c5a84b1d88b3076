package main

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/bcctl/bcctl/internal/script"
)

// TestProxyDocScripts loads every script of docs/proxy.md as bcctl proxy
// loads --script (a proxy's script may relay), against the corpus: the
// tampering examples, the recording, and the scripts the session runs.
func TestProxyDocScripts(t *testing.T) {
	data, err := os.ReadFile("../../docs/proxy.md")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, b := range fencedBlocks(string(data)) {
		if !strings.HasPrefix(b.info, "yaml") {
			continue
		}
		n++
		if _, err := script.Parse(context.Background(), "proxy.md", []byte(b.body), script.Config{Upstream: corpusSource(), Relay: true}); err != nil {
			t.Errorf("docs/proxy.md:%d: the script does not load:\n%v", b.line, err)
		}
	}
	if n < 5 {
		t.Errorf("docs/proxy.md has %d YAML blocks; the test expects the session's three, the recording and the tampering example", n)
	}
}
