package words_test

import (
	"slices"
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

// TestClosest holds the cases the script loader and `bcctl call` each
// relied on before they shared one policy: only the nearest names, only
// when they are near for the name's length, and names that contain the
// typed one (or are contained in it) count as near.
func TestClosest(t *testing.T) {
	usersMethods := []string{"Get", "Create", "Update", "Delete", "List", "Import", "Chat"}
	tests := []struct {
		name       string
		candidates []string
		want       []string
	}{
		{"Gett", usersMethods, []string{"Get"}},
		{"Frobnicate", usersMethods, nil},
		{"VoteTransactoin", []string{"VoteTransaction", "StopTransaction"}, []string{"VoteTransaction"}},
		{"Vote", []string{"VoteTransaction", "StopTransaction"}, []string{"VoteTransaction"}},
		{"CreateBrunch", []string{"CreateBranch", "DeleteBranch", "FindAllBranches"}, []string{"CreateBranch"}},
		{"nickame", []string{"id", "name", "nickname", "role"}, []string{"nickname"}},
		{"regex", []string{"re", "glob", "one_of", "exists", "gt", "ge", "lt", "le"}, []string{"re", "ge"}},
		{"request", []string{"req", "meta", "n", "peer", "env"}, []string{"req"}},
		{"storage", []string{"storage_name", "relative_path"}, []string{"storage_name"}},
		{"ONW", []string{"one", "two"}, []string{"one"}},
		{"grüßen", []string{"grüßem", "grußen"}, []string{"grüßem", "grußen"}},
		{"a", []string{"b", "c", "d", "e"}, []string{"b", "c", "d"}}, // at most n, in candidate order
	}
	for _, tt := range tests {
		got := words.Closest(tt.name, tt.candidates, 3)
		if !slices.Equal(got, tt.want) {
			t.Errorf("Closest(%q, %q) = %q, want %q", tt.name, tt.candidates, got, tt.want)
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
