package script_test

import (
	"context"
	"fmt"
	"io"
	"log"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/corpus"
	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/script"
)

// oneCall is a unary dynamic.Call with one request.
type oneCall struct {
	method protoreflect.MethodDescriptor
	md     metadata.MD
	req    proto.Message
}

func (c *oneCall) Context() context.Context              { return context.Background() }
func (c *oneCall) Method() protoreflect.MethodDescriptor { return c.method }
func (c *oneCall) Metadata() metadata.MD                 { return c.md }
func (c *oneCall) Peer() calls.Peer                      { return calls.Peer{BackchannelID: 1} }
func (c *oneCall) SetHeader(metadata.MD) error           { return nil }
func (c *oneCall) SendHeader(metadata.MD) error          { return nil }
func (c *oneCall) SetTrailer(metadata.MD)                {}
func (c *oneCall) Send(m proto.Message) error {
	r := m.ProtoReflect()
	fields := r.Descriptor().Fields()
	fmt.Printf("reply: id=%q name=%q\n", r.Get(fields.ByName("id")).String(), r.Get(fields.ByName("name")).String())
	return nil
}
func (c *oneCall) Recv() (proto.Message, error) {
	if c.req == nil {
		return nil, io.EOF
	}
	m := c.req
	c.req = nil
	return m, nil
}

// Example loads a script against a schema and answers calls with it, the
// way bcctl serve does. The schema is bcctl's corpus (internal/corpus), as
// bcctl serve --protoset loads it.
func Example() {
	ctx := context.Background()
	schema, err := dynamic.NewSourceFromProtosetBytes(corpus.Protoset)
	if err != nil {
		log.Fatal(err)
	}

	s, err := script.Parse(ctx, "users.yaml", []byte(`
rules:
  - match: {method: acme.Users/Get}
    times: 1
    fail: {code: UNAVAILABLE, message: "try again"}
  - match: {method: acme.Users/Get}
    reply: {id: "${req.id}", name: "user ${req.id} for ${meta.x-team}"}
expect:
  - {method: acme.Users/Get, count: 2}
`), script.Config{Upstream: schema})
	if err != nil {
		log.Fatal(err)
	}
	engine := script.NewEngine(s, script.Upstream, script.Options{})

	method, err := dynamic.FindMethod(ctx, schema, "acme.Users/Get")
	if err != nil {
		log.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		req := dynamicpb.NewMessage(method.Input())
		req.Set(method.Input().Fields().ByName("id"), protoreflect.ValueOfString("u42"))
		err := engine.Respond(&oneCall{method: method, md: metadata.Pairs("x-team", "core"), req: req})
		fmt.Println("status:", err)
	}
	fmt.Println(engine.Check())

	_, err = script.Parse(ctx, "typo.yaml", []byte("rules:\n  - {match: {method: acme.Users/Gte}, reply: {}}\n"), script.Config{Upstream: schema})
	fmt.Println(err)
	// Output:
	// status: rpc error: code = Unavailable desc = try again
	// reply: id="u42" name="user u42 for core"
	// status: <nil>
	// expectations: all 1 met
	//   ok   expect[0] (users.yaml:9): want exactly 2 calls to acme.Users/Get, got 2
	// script: typo.yaml:2:22: rules[0].match.method: unknown method "acme.Users/Gte"; did you mean "acme.Users/Get"?
}
