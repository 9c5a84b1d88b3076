package script

import (
	"fmt"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"gopkg.in/yaml.v3"

	"github.com/bcctl/bcctl/internal/calls"
)

// code reads a code node.
func (d *diags) code(n *yaml.Node, what string) (codes.Code, bool) {
	n = deref(n)
	if n == nil || n.Kind != yaml.ScalarNode || isNull(n) {
		d.errorf(orNode(n), "%s must be a status code name or number, not %s", what, describeNode(n))
		return 0, false
	}
	c, err := calls.ParseCode(n.Value)
	if err != nil {
		d.errorf(n, "%s: %v", what, err)
		return 0, false
	}
	return c, true
}

// failSpec is a compiled `fail` (also used for `else`).
type failSpec struct {
	pos      calls.Pos
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
