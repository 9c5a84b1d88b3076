package script

import (
	"context"
	"io"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/corpus"
	"github.com/bcctl/bcctl/internal/dynamic"
)

// testSchema is bcctl's schema corpus (internal/corpus), loaded from its
// protoset the way bcctl serve --protoset and bcctl demo load it, so that
// what these tests and docs/script.md show holds against the real corpus.
type testSchema struct {
	*dynamic.FileSource
}

var (
	schemaOnce sync.Once
	schemaVal  *testSchema
	schemaErr  error
)

func loadTestSchema(t testing.TB) *testSchema {
	t.Helper()
	schemaOnce.Do(func() {
		src, err := dynamic.NewSourceFromProtosetBytes(corpus.Protoset)
		if err != nil {
			schemaErr = err
			return
		}
		schemaVal = &testSchema{src}
	})
	if schemaErr != nil {
		t.Fatalf("load the corpus protoset: %v", schemaErr)
	}
	return schemaVal
}

// method returns a method descriptor of the test schema.
func (s *testSchema) method(t testing.TB, name string) protoreflect.MethodDescriptor {
	t.Helper()
	d, err := s.FindSymbol(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return d.(protoreflect.MethodDescriptor)
}

// message returns a message descriptor of the test schema.
func (s *testSchema) message(t testing.TB, name string) protoreflect.MessageDescriptor {
	t.Helper()
	d, err := s.FindSymbol(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return d.(protoreflect.MessageDescriptor)
}

// parse loads src against the test schema, failing the test on error.
func parse(t testing.TB, src string) *Script {
	t.Helper()
	s, err := Parse(context.Background(), "test.yaml", []byte(src), Config{Upstream: loadTestSchema(t)})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return s
}

// parseErr loads src and returns the error text ("" when it loads).
func parseErr(t testing.TB, src string) string {
	t.Helper()
	_, err := Parse(context.Background(), "test.yaml", []byte(src), Config{Upstream: loadTestSchema(t)})
	if err == nil {
		return ""
	}
	return err.Error()
}

// msg builds a dynamic message of the named type from JSON.
func msg(t testing.TB, md protoreflect.MessageDescriptor, js string) proto.Message {
	t.Helper()
	m := dynamicpb.NewMessage(md)
	if err := (protojson.UnmarshalOptions{Resolver: loadTestSchema(t).Types()}).Unmarshal([]byte(js), m); err != nil {
		t.Fatalf("message %s from %s: %v", md.FullName(), js, err)
	}
	return m
}

// toJSON renders a message compactly (proto names) for comparisons.
func toJSON(t testing.TB, m proto.Message) string {
	t.Helper()
	v, err := messageJSON(m, loadTestSchema(t).Types())
	if err != nil {
		t.Fatal(err)
	}
	return stringify(v)
}

// fakeCall is a dynamic.Call fed from a list of requests.
type fakeCall struct {
	ctx     context.Context
	method  protoreflect.MethodDescriptor
	md      metadata.MD
	peer    calls.Peer
	mu      sync.Mutex
	reqs    []proto.Message
	recvs   chan proto.Message // when non-nil, Recv reads from it until closed
	sent    []proto.Message
	header  metadata.MD
	trailer metadata.MD
	onSend  func(proto.Message)
}

func newCall(t testing.TB, method string, md metadata.MD, reqs ...string) *fakeCall {
	t.Helper()
	s := loadTestSchema(t)
	m := s.method(t, method)
	c := &fakeCall{ctx: context.Background(), method: m, md: md, peer: calls.Peer{Addr: "127.0.0.1:5555", BackchannelID: 7}}
	if c.md == nil {
		c.md = metadata.MD{}
	}
	for _, r := range reqs {
		c.reqs = append(c.reqs, msg(t, m.Input(), r))
	}
	return c
}

func (c *fakeCall) Context() context.Context              { return c.ctx }
func (c *fakeCall) Method() protoreflect.MethodDescriptor { return c.method }
func (c *fakeCall) Metadata() metadata.MD                 { return c.md }
func (c *fakeCall) Peer() calls.Peer                      { return c.peer }

func (c *fakeCall) Recv() (proto.Message, error) {
	if c.recvs != nil {
		select {
		case m, ok := <-c.recvs:
			if !ok {
				return nil, io.EOF
			}
			return m, nil
		case <-c.ctx.Done():
			return nil, c.ctx.Err()
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.reqs) == 0 {
		return nil, io.EOF
	}
	m := c.reqs[0]
	c.reqs = c.reqs[1:]
	return m, nil
}

func (c *fakeCall) SetHeader(md metadata.MD) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.header = metadata.Join(c.header, md)
	return nil
}

func (c *fakeCall) SendHeader(md metadata.MD) error { return c.SetHeader(md) }

func (c *fakeCall) Send(m proto.Message) error {
	c.mu.Lock()
	c.sent = append(c.sent, m)
	f := c.onSend
	c.mu.Unlock()
	if f != nil {
		f(m)
	}
	return nil
}

func (c *fakeCall) SetTrailer(md metadata.MD) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.trailer = metadata.Join(c.trailer, md)
}

// sentJSON returns the sent messages as JSON texts.
func (c *fakeCall) sentJSON(t testing.TB) []string {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, m := range c.sent {
		out = append(out, toJSON(t, m))
	}
	return out
}

// engineConn is a grpc.ClientConnInterface that answers with an Engine,
// in process: the other side of a backchannel for tests.
type engineConn struct {
	engine *Engine
	schema *testSchema
	peer   calls.Peer
}

func (c *engineConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	md, _ := metadata.FromOutgoingContext(ctx)
	d, err := c.schema.FindSymbol(ctx, method)
	if err != nil {
		return err
	}
	call := &fakeCall{ctx: ctx, method: d.(protoreflect.MethodDescriptor), md: md.Copy(), peer: c.peer}
	if call.md == nil {
		call.md = metadata.MD{}
	}
	call.reqs = []proto.Message{args.(proto.Message)}
	if err := c.engine.Respond(call); err != nil {
		return err
	}
	if len(call.sent) != 1 {
		return status.Errorf(13, "engineConn: %d replies", len(call.sent))
	}
	b, err := proto.Marshal(call.sent[0])
	if err != nil {
		return err
	}
	for _, o := range opts {
		switch o := o.(type) {
		case grpc.HeaderCallOption:
			*o.HeaderAddr = call.header
		case grpc.TrailerCallOption:
			*o.TrailerAddr = call.trailer
		}
	}
	return proto.Unmarshal(b, reply.(proto.Message))
}

func (c *engineConn) NewStream(context.Context, *grpc.StreamDesc, string, ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, status.Error(12, "engineConn: streams are not supported")
}

// events collects observer events.
type events struct {
	mu   sync.Mutex
	list []*calls.Event
}

func (e *events) ObserveCall(ev *calls.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.list = append(e.list, ev)
}

func (e *events) all() []*calls.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]*calls.Event(nil), e.list...)
}
