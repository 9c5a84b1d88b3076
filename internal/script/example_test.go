package script_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"path/filepath"

	"github.com/bufbuild/protocompile"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/script"
)

// fileSchema is a minimal script.Schema over compiled .proto files; bcctl
// passes a dynamic.Source instead.
type fileSchema struct{ files *protoregistry.Files }

func (s fileSchema) ListServices(context.Context) ([]protoreflect.FullName, error) {
	var out []protoreflect.FullName
	s.files.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		for i := 0; i < fd.Services().Len(); i++ {
			out = append(out, fd.Services().Get(i).FullName())
		}
		return true
	})
	return out, nil
}

func (s fileSchema) FindSymbol(_ context.Context, name string) (protoreflect.Descriptor, error) {
	if i := len(name) - len(filepath.Base(name)); i > 0 { // "pkg.Svc/Method"
		name = name[:i-1] + "." + name[i:]
	}
	d, err := s.files.FindDescriptorByName(protoreflect.FullName(name))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, dynamic.ErrNotFound)
	}
	return d, nil
}

func (s fileSchema) Types() dynamic.TypeResolver { return protoregistry.GlobalTypes }

// oneCall is a unary dynamic.Call with one request.
type oneCall struct {
	method protoreflect.MethodDescriptor
	md     metadata.MD
	req    proto.Message
}

func (c *oneCall) Context() context.Context              { return context.Background() }
func (c *oneCall) Method() protoreflect.MethodDescriptor { return c.method }
func (c *oneCall) Metadata() metadata.MD                 { return c.md }
func (c *oneCall) Peer() dynamic.Peer                    { return dynamic.Peer{BackchannelID: 1} }
func (c *oneCall) SetHeader(metadata.MD) error           { return nil }
func (c *oneCall) SendHeader(metadata.MD) error          { return nil }
func (c *oneCall) SetTrailer(metadata.MD)                {}
func (c *oneCall) Send(m proto.Message) error {
	r := m.ProtoReflect()
	fields := r.Descriptor().Fields()
	fmt.Printf("reply: id=%d display_name=%q\n", r.Get(fields.ByName("id")).Int(), r.Get(fields.ByName("display_name")).String())
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
// way bcctl serve does.
func Example() {
	ctx := context.Background()
	compiler := protocompile.Compiler{Resolver: protocompile.WithStandardImports(&protocompile.SourceResolver{ImportPaths: []string{"testdata"}})}
	compiled, err := compiler.Compile(ctx, "acme.proto")
	if err != nil {
		log.Fatal(err)
	}
	files := &protoregistry.Files{}
	for _, f := range compiled {
		for i := 0; i < f.Imports().Len(); i++ {
			_ = files.RegisterFile(f.Imports().Get(i).FileDescriptor)
		}
		if err := files.RegisterFile(f); err != nil {
			log.Fatal(err)
		}
	}
	schema := fileSchema{files}

	s, err := script.Parse(ctx, "users.yaml", []byte(`
rules:
  - match: {method: acme.Users/Get}
    times: 1
    fail: {code: UNAVAILABLE, message: "try again"}
  - match: {method: acme.Users/Get}
    reply: {id: "${req.id}", display_name: "user ${req.id} for ${meta.x-team}"}
expect:
  - {method: acme.Users/Get, count: 2}
`), script.Config{Upstream: schema})
	if err != nil {
		log.Fatal(err)
	}
	engine := script.NewEngine(s, script.Upstream, script.Options{})

	d, _ := schema.FindSymbol(ctx, "acme.Users/Get")
	method := d.(protoreflect.MethodDescriptor)
	for i := 0; i < 2; i++ {
		req := dynamicpb.NewMessage(method.Input())
		req.Set(method.Input().Fields().ByName("id"), protoreflect.ValueOfInt64(42))
		err := engine.Respond(&oneCall{method: method, md: metadata.Pairs("x-team", "core"), req: req})
		fmt.Println("status:", err)
	}
	fmt.Println(engine.Check())

	_, err = script.Parse(ctx, "typo.yaml", []byte("rules:\n  - {match: {method: acme.Users/Gte}, reply: {}}\n"), script.Config{Upstream: schema})
	fmt.Println(err)
	// Output:
	// status: rpc error: code = Unavailable desc = try again
	// reply: id=42 display_name="user 42 for core"
	// status: <nil>
	// expectations: all 1 met
	//   ok   expect[0] (users.yaml:9): want exactly 2 calls to acme.Users/Get, got 2
	// script: typo.yaml:2:22: rules[0].match.method: unknown method "acme.Users/Gte"; did you mean "acme.Users/Get"?
}
