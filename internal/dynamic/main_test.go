package dynamic

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/anypb"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const corpusDir = "../corpus"

var corpusFiles = []string{
	"acme/errors.proto", "acme/user.proto", "acme/users.proto",
	"gitaly/operations.proto", "gitaly/ref.proto", "gitaly/shared.proto", "gitaly/smarthttp.proto", "gitaly/ssh.proto",
	"gitaly/transaction.proto",
}

// testContext returns a context that ends with the test or after 30s.
func testContext(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func filesSource(t testing.TB) Source {
	t.Helper()
	src, err := NewSourceFromProtoFiles(testContext(t), ProtoFilesOptions{ImportPaths: []string{corpusDir}}, corpusFiles...)
	if err != nil {
		t.Fatalf("NewSourceFromProtoFiles: %v", err)
	}
	return src
}

func protosetSource(t testing.TB) Source {
	t.Helper()
	src, err := NewSourceFromProtosets(corpusDir + "/corpus.protoset")
	if err != nil {
		t.Fatalf("NewSourceFromProtosets: %v", err)
	}
	return src
}

// startServer serves the corpus (from the protoset) with corpusResponder,
// reflection and health on 127.0.0.1 and returns its address.
func startServer(t testing.TB, r Responder, opts ...grpc.ServerOption) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(opts...)
	if _, err := RegisterSource(testContext(t), srv, protosetSource(t), r); err != nil {
		t.Fatalf("RegisterSource: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return lis.Addr().String()
}

func dial(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

func reflectionSource(t testing.TB) Source {
	t.Helper()
	cc := dial(t, startServer(t, corpusResponder()))
	src := NewSourceFromReflection(context.Background(), cc, nil)
	t.Cleanup(func() { _ = src.Close() })
	return src
}

// eachSource runs f against the corpus loaded from .proto files, from the
// protoset and through server reflection, as grpcurl's tests do.
func eachSource(t *testing.T, f func(t *testing.T, src Source)) {
	t.Helper()
	for _, tc := range []struct {
		name string
		load func(testing.TB) Source
	}{
		{"files", filesSource},
		{"protoset", protosetSource},
		{"reflection", reflectionSource},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f(t, tc.load(t))
		})
	}
}

// newMsg builds a dynamic message of md from JSON.
func newMsg(t testing.TB, md protoreflect.MessageDescriptor, js string) *dynamicpb.Message {
	t.Helper()
	m := dynamicpb.NewMessage(md)
	if err := (protojson.UnmarshalOptions{Resolver: testTypes()}).Unmarshal([]byte(js), m); err != nil {
		t.Fatalf("build %s from %s: %v", md.FullName(), js, err)
	}
	return m
}

// mustMsg is newMsg for responders, which have no testing.TB.
func mustMsg(md protoreflect.MessageDescriptor, js string) *dynamicpb.Message {
	m := dynamicpb.NewMessage(md)
	if err := protojson.Unmarshal([]byte(js), m); err != nil {
		panic(fmt.Sprintf("build %s from %s: %v", md.FullName(), js, err))
	}
	return m
}

// toJSON renders m compactly with stable spacing.
func toJSON(t testing.TB, m proto.Message) string {
	t.Helper()
	f, err := NewFormatter(FormatJSON, testTypes(), FormatOptions{Compact: true})
	if err != nil {
		t.Fatal(err)
	}
	s, err := f(m)
	if err != nil {
		t.Fatalf("format %v: %v", m, err)
	}
	return s
}

func getBytes(m proto.Message, field string) []byte {
	r := m.ProtoReflect()
	return r.Get(r.Descriptor().Fields().ByName(protoreflect.Name(field))).Bytes()
}

func getString(m proto.Message, field string) string {
	r := m.ProtoReflect()
	return r.Get(r.Descriptor().Fields().ByName(protoreflect.Name(field))).String()
}

// corpusResponder answers the corpus services the way the tests expect:
//
//	acme.Users/Get     id "missing" -> NOT_FOUND + ErrorInfo; else {id, name: "user <id>"};
//	                   echoes metadata x-test as header x-echo, trailer x-trailer: done
//	acme.Users/Create  name "" -> INVALID_ARGUMENT + BadRequest; name "taken" ->
//	                   ALREADY_EXISTS + acme.UserConflict; else the user with id "new"
//	acme.Users/List    limit (default 3) users u1..uN
//	acme.Users/Import  counts users, skipping repeated ids
//	acme.Users/Chat    echoes each message as "echo: <text>"
//	gitaly.RefTransaction/VoteTransaction  COMMIT when the hash is set, else ABORT
//	anything else      UNIMPLEMENTED
func corpusResponder() Responder {
	return ResponderFunc(func(call Call) error {
		md := call.Method()
		out := md.Output()
		switch MethodName(md) {
		case "acme.Users/Get":
			req, err := call.Recv()
			if err != nil {
				return err
			}
			id := getString(req, "id")
			if v := call.Metadata().Get("x-test"); len(v) > 0 {
				if err := call.SetHeader(metadata.Pairs("x-echo", v[0])); err != nil {
					return err
				}
			}
			call.SetTrailer(metadata.Pairs("x-trailer", "done"))
			if id == "missing" {
				return detailedError(codes.NotFound, fmt.Sprintf("user %q not found", id), &errdetails.ErrorInfo{
					Reason: "USER_NOT_FOUND", Domain: "acme.example", Metadata: map[string]string{"id": id},
				})
			}
			return call.Send(mustMsg(out, fmt.Sprintf(`{"id": %q, "name": "user %s"}`, id, id)))
		case "acme.Users/Create":
			req, err := call.Recv()
			if err != nil {
				return err
			}
			user := req.ProtoReflect().Get(req.ProtoReflect().Descriptor().Fields().ByName("user")).Message().Interface()
			switch name := getString(user, "name"); name {
			case "":
				return detailedError(codes.InvalidArgument, "invalid user", &errdetails.BadRequest{
					FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "user.name", Description: "must not be empty"}},
				})
			case "taken":
				conflict := mustMsg(corpusMessage("acme.UserConflict"), `{"existingId": "u1", "field": "name"}`)
				return detailedError(codes.AlreadyExists, "name taken", conflict)
			default:
				resp := proto.Clone(user)
				resp.ProtoReflect().Set(out.Fields().ByName("id"), protoreflect.ValueOfString("new"))
				return call.Send(resp)
			}
		case "acme.Users/List":
			req, err := call.Recv()
			if err != nil {
				return err
			}
			limit := req.ProtoReflect().Get(req.ProtoReflect().Descriptor().Fields().ByName("limit")).Uint()
			if limit == 0 {
				limit = 3
			}
			for i := uint64(1); i <= limit; i++ {
				if err := call.Send(mustMsg(out, fmt.Sprintf(`{"id": "u%d"}`, i))); err != nil {
					return err
				}
			}
			return nil
		case "acme.Users/Import":
			seen := map[string]bool{}
			var skipped []string
			imported := 0
			for {
				u, err := call.Recv()
				if err == io.EOF {
					break
				}
				if err != nil {
					return err
				}
				id := getString(u, "id")
				if seen[id] {
					skipped = append(skipped, fmt.Sprintf("%q", id))
					continue
				}
				seen[id] = true
				imported++
			}
			return call.Send(mustMsg(out, fmt.Sprintf(`{"imported": %d, "skippedIds": [%s]}`, imported, strings.Join(skipped, ","))))
		case "acme.Users/Chat":
			for {
				m, err := call.Recv()
				if err == io.EOF {
					return nil
				}
				if err != nil {
					return err
				}
				if err := call.Send(mustMsg(out, fmt.Sprintf(`{"from": "server", "text": "echo: %s"}`, getString(m, "text")))); err != nil {
					return err
				}
			}
		case "gitaly.RefTransaction/VoteTransaction":
			req, err := call.Recv()
			if err != nil {
				return err
			}
			hash := req.ProtoReflect().Get(req.ProtoReflect().Descriptor().Fields().ByName("reference_updates_hash")).Bytes()
			if len(hash) == 0 {
				return call.Send(mustMsg(out, `{"state": "ABORT"}`))
			}
			return call.Send(mustMsg(out, `{"state": "COMMIT"}`))
		default:
			return status.Errorf(codes.Unimplemented, "corpusResponder does not answer %s", MethodName(md))
		}
	})
}

// corpusTypes resolves the corpus types, for responders that build
// messages other than their method's output (error details).
var corpusTypes = sync.OnceValue(func() TypeResolver {
	src, err := NewSourceFromProtosets(corpusDir + "/corpus.protoset")
	if err != nil {
		panic(err)
	}
	return src.Types()
})

// testTypes resolves the corpus types and the program's (google.rpc).
func testTypes() TypeResolver { return ChainTypes(corpusTypes(), protoregistry.GlobalTypes) }

func corpusMessage(name protoreflect.FullName) protoreflect.MessageDescriptor {
	mt, err := corpusTypes().FindMessageByName(name)
	if err != nil {
		panic(fmt.Sprintf("message %s: %v", name, err))
	}
	return mt.Descriptor()
}

// detailedError returns a status error carrying details (generated or
// dynamic messages).
func detailedError(code codes.Code, msg string, details ...proto.Message) error {
	sp := &spb.Status{Code: int32(code), Message: msg}
	for _, d := range details {
		a, err := anypb.New(d)
		if err != nil {
			return status.Errorf(codes.Internal, "pack detail: %v", err)
		}
		sp.Details = append(sp.Details, a)
	}
	return status.ErrorProto(sp)
}

var errBoom = errors.New("boom")

// recorder is an InvocationEventHandler that keeps everything.
type recorder struct {
	mu        sync.Mutex
	method    protoreflect.MethodDescriptor
	sent      metadata.MD
	headers   metadata.MD
	responses []proto.Message
	status    *status.Status
	trailers  metadata.MD
	onResp    func(proto.Message)
	order     []string
}

func (r *recorder) OnResolveMethod(md protoreflect.MethodDescriptor) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.method = md
	r.order = append(r.order, "resolve")
}

func (r *recorder) OnSendHeaders(md metadata.MD) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent = md
	r.order = append(r.order, "send-headers")
}

func (r *recorder) OnReceiveHeaders(md metadata.MD) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.headers = md
	r.order = append(r.order, "headers")
}

func (r *recorder) OnReceiveResponse(m proto.Message) {
	r.mu.Lock()
	r.responses = append(r.responses, m)
	r.order = append(r.order, "response")
	f := r.onResp
	r.mu.Unlock()
	if f != nil {
		f(m)
	}
}

func (r *recorder) OnReceiveTrailers(st *status.Status, md metadata.MD) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status = st
	r.trailers = md
	r.order = append(r.order, "trailers")
}
