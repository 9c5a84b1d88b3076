package demo

import (
	"context"
	"flag"
	"os"
	"regexp"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var update = flag.Bool("update", false, "rewrite testdata/transcript.golden")

var port = regexp.MustCompile(`127\.0\.0\.1:\d+`)

// TestTranscript runs the demo and compares its transcript, with the
// loopback ports replaced, with testdata/transcript.golden.
func TestTranscript(t *testing.T) {
	for range 3 { // the transcript is the same every time
		var out strings.Builder
		if err := Run(context.Background(), &out, Options{}); err != nil {
			t.Fatalf("Run: %v\n%s", err, out.String())
		}
		got := port.ReplaceAllString(out.String(), "127.0.0.1:PORT")
		const golden = "testdata/transcript.golden"
		if *update {
			if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatal(err)
		}
		if got != string(want) {
			t.Fatalf("transcript differs from %s (go test -update to accept):\n%s", golden, got)
		}
	}
}

func TestTimeoutIsAnError(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out strings.Builder
	if err := Run(ctx, &out, Options{}); err == nil {
		t.Fatalf("a cancelled demo succeeded:\n%s", out.String())
	}
}

// TestReadmeShowsTheTranscript: README.md's first command is the demo, and
// the transcript it shows is the golden one.
func TestReadmeShowsTheTranscript(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	const cmd = "$ go run ./cmd/bcctl demo\n"
	start := strings.Index(text, "```console\n"+cmd)
	if start < 0 {
		t.Fatalf("README.md has no console block that starts with %q", cmd)
	}
	if first := strings.Index(text, "\n$ "); first < start {
		t.Errorf("README.md's first command is not the demo: %q", strings.SplitN(text[first+1:], "\n", 2)[0])
	}
	body := text[start+len("```console\n"+cmd):]
	end := strings.Index(body, "```")
	if end < 0 {
		t.Fatal("README.md: the demo's block does not end")
	}
	want, err := os.ReadFile("testdata/transcript.golden")
	if err != nil {
		t.Fatal(err)
	}
	if got := port.ReplaceAllString(body[:end], "127.0.0.1:PORT"); got != string(want) {
		t.Errorf("README.md's demo transcript differs from testdata/transcript.golden:\n%s", got)
	}
}
