package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
)

// TestVerboseLog: the libraries' debug lines (yamux's) are shown under -vv
// and not otherwise, unless BCCTL_LOG chose the level.
func TestVerboseLog(t *testing.T) {
	tests := []struct {
		bcctlLog  string
		verbosity int
		want      bool
	}{
		{"", 0, false},
		{"", 1, false},
		{"", 2, true},
		{"warn", 2, false},
		{"off", 2, false},
		{"debug", 0, true},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		logger, level := newLogger(&buf, tt.bcctlLog)
		f := &Factory{Logger: logger, logLevel: level}
		f.verboseLog(tt.verbosity)
		f.Logger.Log(context.Background(), slog.LevelDebug, "[ERR] yamux: Failed to read header", "component", "yamux")
		if got := strings.Contains(buf.String(), "yamux"); got != tt.want {
			t.Errorf("BCCTL_LOG=%q, verbosity %d: debug line shown %v, want %v", tt.bcctlLog, tt.verbosity, got, tt.want)
		}
	}
}
