package backchannel

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// TestYamuxLinesAreDebug: yamux's own lines, whatever level yamux gives
// them, reach the logger at the debug level only, so a logger at its
// default level (info, or bcctl's warn) never prints them ahead of the
// caller's own report of the same failure.
func TestYamuxLinesAreDebug(t *testing.T) {
	lines := []string{
		"[ERR] yamux: Failed to read header: remote error: tls: certificate required",
		"[WARN] yamux: frame for missing stream: Vsn:0 Type:1 Flags:1 StreamID:3 Length:0",
		"[ERR] yamux: Failed to discard data: read tcp 127.0.0.1:1->127.0.0.1:2: use of closed network connection",
	}
	for _, level := range []slog.Level{slog.LevelInfo, slog.LevelWarn} {
		var buf bytes.Buffer
		l := yamuxLogger{logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: level}))}
		for _, line := range lines {
			l.Println(line)
		}
		if buf.Len() != 0 {
			t.Errorf("a logger at %s printed yamux's lines:\n%s", level, buf.String())
		}
	}

	var buf bytes.Buffer
	l := yamuxLogger{logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	for _, line := range lines {
		l.Printf("%s", line)
	}
	got := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(got) != len(lines) {
		t.Fatalf("a debug logger printed %d lines, want %d:\n%s", len(got), len(lines), buf.String())
	}
	for i, g := range got {
		if !strings.Contains(g, "level=DEBUG") || !strings.Contains(g, "component=yamux") {
			t.Errorf("line %d = %s, want it at DEBUG from component yamux", i, g)
		}
	}
}
