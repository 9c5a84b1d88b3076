package script

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/dynamic"
)

// streamCall adapts a grpc.ServerStream to dynamic.Call. It stands in for
// internal/dynamic's server in these tests.
type streamCall struct {
	stream grpc.ServerStream
	method protoreflect.MethodDescriptor
}

func (c *streamCall) Context() context.Context              { return c.stream.Context() }
func (c *streamCall) Method() protoreflect.MethodDescriptor { return c.method }
func (c *streamCall) Metadata() metadata.MD {
	md, _ := metadata.FromIncomingContext(c.stream.Context())
	if md == nil {
		md = metadata.MD{}
	}
	return md
}
func (c *streamCall) Peer() calls.Peer {
	p, _ := peer.FromContext(c.stream.Context())
	if p == nil {
		return calls.Peer{}
	}
	return calls.Peer{Addr: p.Addr.String()}
}
func (c *streamCall) Recv() (proto.Message, error) {
	m := dynamicpb.NewMessage(c.method.Input())
	if err := c.stream.RecvMsg(m); err != nil {
		return nil, err
	}
	return m, nil
}
func (c *streamCall) SetHeader(md metadata.MD) error  { return c.stream.SetHeader(md) }
func (c *streamCall) SendHeader(md metadata.MD) error { return c.stream.SendHeader(md) }
func (c *streamCall) Send(m proto.Message) error      { return c.stream.SendMsg(m) }
func (c *streamCall) SetTrailer(md metadata.MD)       { c.stream.SetTrailer(md) }

// engineHandler answers every method of the test schema with r.
func engineHandler(t *testing.T, r dynamic.Responder) grpc.ServerOption {
	sc := loadTestSchema(t)
	return grpc.UnknownServiceHandler(func(_ any, stream grpc.ServerStream) error {
		name, _ := grpc.MethodFromServerStream(stream)
		d, err := sc.FindSymbol(stream.Context(), name)
		if err != nil {
			return status.Errorf(codes.Unimplemented, "unknown method %s", name)
		}
		return r.Respond(&streamCall{stream: stream, method: d.(protoreflect.MethodDescriptor)})
	})
}

// serveEngine serves r on a real gRPC server on 127.0.0.1 for every
// method of the test schema.
func serveEngine(t *testing.T, r dynamic.Responder) *grpc.ClientConn {
	t.Helper()
	srv := grpc.NewServer(engineHandler(t, r))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	cc, err := grpc.NewClient("passthrough:///"+lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// TestOverGRPC runs an upstream engine behind a real gRPC server whose
// `call` steps go back over a real client connection to a downstream
// engine: dynamic messages on the wire in both directions.
func TestOverGRPC(t *testing.T) {
	down := NewEngine(parse(t, ``), Downstream, Options{})
	downConn := serveEngine(t, down)
	upScript := strings.Replace(voteUpstream, "\nexpect:", `
  - match: {method: acme.Users/Chat}
    each: [{send: {text: "#${i} echo ${req.text}", attachment: "${req.text}"}}]
expect:`, 1)
	up := NewEngine(parse(t, upScript), Upstream, Options{Caller: CallerFunc(func(_ context.Context, from calls.Peer, _ string) ([]Target, error) {
		return []Target{{Peer: from, Conn: downConn}}, nil
	})})
	upConn := serveEngine(t, up)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sc := loadTestSchema(t)
	create := sc.method(t, "gitaly.OperationService/UserCreateBranch")
	for _, tc := range []struct {
		want string
		code codes.Code
		msg  string
	}{
		{"COMMIT", codes.OK, ""},
		{"STOP", codes.Aborted, "vote was STOP from peer 0"},
	} {
		octx := metadata.NewOutgoingContext(ctx, transaction(`{"id": 12, "node": "gitaly-1", "primary": true}`))
		down.Reload(parse(t, `
backchannel:
  - match: {method: gitaly.RefTransaction/VoteTransaction, request: {transaction_id: 12, node: feature/a}}
    reply: {state: `+tc.want+`}
`))
		reply := dynamicpb.NewMessage(create.Output())
		err := upConn.Invoke(octx, "/gitaly.OperationService/UserCreateBranch", msg(t, create.Input(), `{"branch_name": "ZmVhdHVyZS9h"}`), reply)
		st := status.Convert(err)
		if st.Code() != tc.code || st.Message() != tc.msg {
			t.Errorf("vote %s: got %v, want %v %q", tc.want, st, tc.code, tc.msg)
		}
	}

	chat := sc.method(t, "acme.Users/Chat")
	stream, err := upConn.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, "/acme.Users/Chat")
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{"a", "b"} {
		if err := stream.SendMsg(msg(t, chat.Input(), `{"text": "`+text+`"}`)); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		m := dynamicpb.NewMessage(chat.Output())
		if err := stream.RecvMsg(m); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		got = append(got, toJSON(t, m))
	}
	if len(got) != 2 || got[0] != `{"attachment":"YQ==","text":"#0 echo a"}` || got[1] != `{"attachment":"Yg==","text":"#1 echo b"}` {
		t.Errorf("chat: got %v", got)
	}
	if rep := up.Check(); !rep.OK() {
		t.Errorf("expectations:\n%s", rep)
	}
}
