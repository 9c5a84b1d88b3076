package words_test

import (
	"testing"

	"github.com/bcctl/bcctl/internal/words"
)

func TestDidYouMean(t *testing.T) {
	tests := []struct {
		name       string
		candidates []string
		want       string
	}{
		{"NOT_FOUNDD", []string{"OK", "NOT_FOUND", "ABORTED"}, `; did you mean "NOT_FOUND"?`},
		{"methd", []string{"method", "request", "metadata"}, `; did you mean "method"?`},
		{"zzzzzzzzzz", []string{"reply", "fail"}, "; known: reply, fail"},
		{"zzzzzzzzzz", nil, ""},
	}
	for _, tt := range tests {
		if got := words.DidYouMean(tt.name, tt.candidates); got != tt.want {
			t.Errorf("DidYouMean(%q, %q) = %q, want %q", tt.name, tt.candidates, got, tt.want)
		}
	}
}

func TestEditDistanceCountsRunes(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"kitten", "sitting", 3},
		{"grüß", "gruß", 1},
		{"名前", "名", 1},
	}
	for _, tt := range tests {
		if got := words.EditDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("EditDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
