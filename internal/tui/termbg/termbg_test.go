package termbg_test

import (
	"testing"

	_ "github.com/charmbracelet/bubbletea" // its init is what must not query the terminal

	"github.com/bcctl/bcctl/internal/tui/termbg"
)

func TestDark(t *testing.T) {
	tests := []struct {
		colorfgbg string
		want      bool
	}{
		{"", true},
		{"15;0", true},
		{"0;15", false},
		{"0;7", false},
		{"15;8", true},
		{"15;default;0", true},
		{"12;default;15", false},
		{"nonsense", true},
		{"15;99", true},
	}
	for _, tt := range tests {
		got := termbg.Dark(func(k string) string {
			if k == "COLORFGBG" {
				return tt.colorfgbg
			}
			return ""
		})
		if got != tt.want {
			t.Errorf("Dark with COLORFGBG=%q = %v, want %v", tt.colorfgbg, got, tt.want)
		}
	}
}
