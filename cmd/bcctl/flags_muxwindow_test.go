package main

import (
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// TestMuxWindowFlag checks what --mux-window accepts and that call's and
// connect's value reaches the connection's yamux configuration.
func TestMuxWindowFlag(t *testing.T) {
	tests := []struct {
		arg     string
		want    uint32
		wantErr string
	}{
		{arg: "16MiB", want: 16 << 20},
		{arg: "256KiB", want: 256 << 10},
		{arg: "1048576", want: 1 << 20},
		{arg: "1GiB", want: 1 << 30},
		{arg: "64KiB", wantErr: "64KiB is outside 256KiB to 1GiB"},
		{arg: "2GiB", wantErr: "2GiB is outside 256KiB to 1GiB"},
		{arg: "16MB", wantErr: `"16MB" is not a size such as 4096, 64KiB or 8MiB`},
	}
	for _, tt := range tests {
		t.Run(tt.arg, func(t *testing.T) {
			var c ClientFlags
			fs := pflag.NewFlagSet("call", pflag.ContinueOnError)
			c.AddFlags(fs)
			err := fs.Parse([]string{"--mux-window", tt.arg})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("--mux-window %s: %v, want an error saying %q", tt.arg, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := c.hostConfig(&clientPlan{}, TestFactory(nil)).Backchannel.MaximumStreamWindowSizeBytes
			if got != tt.want {
				t.Errorf("--mux-window %s gives a window of %d bytes, want %d", tt.arg, got, tt.want)
			}
		})
	}
}
