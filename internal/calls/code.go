package calls

import (
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"

	"github.com/bcctl/bcctl/internal/words"
)

// codeNames are the canonical names of gRPC codes, as scripts write them.
var codeNames = []string{
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
	"ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
	"UNAUTHENTICATED",
}

// CodeName returns the canonical upper-case name of a gRPC code
// ("NOT_FOUND"), or its number for codes outside the known range.
func CodeName(c codes.Code) string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return strconv.Itoa(int(c))
}

// ParseCode reads a gRPC code by name (NOT_FOUND, not_found, NotFound,
// CANCELED and CANCELLED) or number (0-16).
func ParseCode(s string) (codes.Code, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 || n >= len(codeNames) {
			return 0, fmt.Errorf("code %d is out of range 0-%d", n, len(codeNames)-1)
		}
		return codes.Code(n), nil
	}
	norm := func(x string) string { return strings.ToLower(strings.ReplaceAll(x, "_", "")) }
	want := norm(s)
	if want == "canceled" {
		return codes.Canceled, nil
	}
	for i, name := range codeNames {
		if norm(name) == want {
			return codes.Code(i), nil
		}
	}
	return 0, fmt.Errorf("unknown status code %q%s", s, words.DidYouMean(strings.ToUpper(s), codeNames))
}
