package forward

import (
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/tui/editor"
)

// parseRequests reads the editor's text as requests of md: exactly one
// when single ("" means an empty message), else any number of JSON values
// one after another. A syntax error names its line and column; a value
// that does not fit the type names its field (and, among several, which
// request and where it starts).
func parseRequests(md protoreflect.MethodDescriptor, text string, resolver dynamic.TypeResolver, single bool) ([]proto.Message, error) {
	values, starts, err := editor.CheckJSON(text)
	if err != nil {
		return nil, err
	}
	if single && len(values) > 1 {
		return nil, editor.At(text, starts[1], fmt.Errorf("a second request: %w", dynamic.ErrTooManyRequests))
	}
	out := make([]proto.Message, 0, len(values))
	for i, v := range values {
		msg := dynamicpb.NewMessage(md.Input())
		if err := dynamic.ParseJSON(v, msg, resolver); err != nil {
			if len(values) > 1 {
				return nil, editor.At(text, starts[i], fmt.Errorf("request %d: %w", i+1, err))
			}
			return nil, err
		}
		out = append(out, msg)
	}
	if single && len(out) == 0 {
		out = append(out, dynamicpb.NewMessage(md.Input()))
	}
	return out, nil
}
