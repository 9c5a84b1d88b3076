package words

import (
	"strings"
	"testing"
)

func TestBytes(t *testing.T) {
	tests := []struct {
		n    int64
		want string
	}{{0, "0B"}, {14, "14B"}, {1023, "1023B"}, {3 << 10, "3.0KiB"}, {1258291, "1.2MiB"}, {2 << 30, "2.0GiB"}}
	for _, tt := range tests {
		if got := Bytes(tt.n); got != tt.want {
			t.Errorf("Bytes(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

func TestParseBytes(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr string
	}{
		{in: "4096", want: 4096},
		{in: "4096B", want: 4096},
		{in: "64KiB", want: 64 << 10},
		{in: "8 MiB", want: 8 << 20},
		{in: "1GiB", want: 1 << 30},
		{in: "8MB", wantErr: `"8MB" is not a size such as 4096, 64KiB or 8MiB`},
		{in: "-1", wantErr: "is not a size"},
		{in: "MiB", wantErr: "is not a size"},
		{in: "99999999999GiB", wantErr: "is not a size"},
	}
	for _, tt := range tests {
		got, err := ParseBytes(tt.in)
		switch {
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("ParseBytes(%q) = %d, %v; want an error saying %q", tt.in, got, err, tt.wantErr)
		case tt.wantErr == "" && (err != nil || got != tt.want):
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}
