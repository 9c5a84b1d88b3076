package words_test

import (
	"fmt"
	"testing"

	"github.com/bcctl/bcctl/internal/words"
)

func TestCount(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		{words.Count(0, "call"), "0 calls"},
		{words.Count(1, "rule"), "1 rule"},
		{words.Count(int64(2), "expectation"), "2 expectations"},
		{words.Count(uint64(1), "peer"), "1 peer"},
		{words.Plural(1, "call was", "calls were"), "call was"},
		{words.Plural(3, "call was", "calls were"), "calls were"},
	}
	for i, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("case %d: got %q, want %q", i, tt.got, tt.want)
		}
	}
}

func ExampleCount() {
	fmt.Println(words.Count(1, "rule") + ", " + words.Count(2, "expectation"))
	// Output: 1 rule, 2 expectations
}
