package script

import (
	"fmt"
	"strconv"
	"strings"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"gopkg.in/yaml.v3"
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
	return 0, fmt.Errorf("unknown status code %q%s", s, didYouMean(strings.ToUpper(s), codeNames))
}

// code reads a code node.
func (d *diags) code(n *yaml.Node, what string) (codes.Code, bool) {
	n = deref(n)
	if n == nil || n.Kind != yaml.ScalarNode || isNull(n) {
		d.errorf(orNode(n), "%s must be a status code name or number, not %s", what, describeNode(n))
		return 0, false
	}
	c, err := ParseCode(n.Value)
	if err != nil {
		d.errorf(n, "%s: %v", what, err)
		return 0, false
	}
	return c, true
}

// failSpec is a compiled `fail` (also used for `else`).
type failSpec struct {
	pos      Pos
	code     codes.Code
	message  *template
	details  []*msgValue // google.protobuf.Any
	trailers []mdValue
}

// status builds the status; it never returns nil.
func (f *failSpec) status(s *scope) (*status.Status, error) {
	msg, err := s.text(f.message)
	if err != nil {
		return nil, fmt.Errorf("fail.message (%s): %w", f.pos, err)
	}
	p := &spb.Status{Code: int32(f.code), Message: msg}
	for _, d := range f.details {
		m, err := d.build(s)
		if err != nil {
			return nil, err
		}
		a, ok := m.(*anypb.Any)
		if !ok {
			a = &anypb.Any{}
			b, err := proto.Marshal(m)
			if err != nil {
				return nil, fmt.Errorf("fail.details (%s): %w", d.pos, err)
			}
			if err := proto.Unmarshal(b, a); err != nil {
				return nil, fmt.Errorf("fail.details (%s): %w", d.pos, err)
			}
		}
		p.Details = append(p.Details, a)
	}
	return status.FromProto(p), nil
}
