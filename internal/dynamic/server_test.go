package dynamic

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	"io"
	"log/slog"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/jhump/protoreflect/v2/grpcreflect"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/emptypb"
)

// misbehaving answers acme.Users/Get (and Chat) in the way its id (or
// first text) asks for.
func misbehaving() Responder {
	return ResponderFunc(func(call Call) error {
		req, err := call.Recv()
		if err != nil {
			return err
		}
		key := ""
		if f := req.ProtoReflect().Descriptor().Fields().ByName("id"); f != nil {
			key = req.ProtoReflect().Get(f).String()
		} else {
			key = getString(req, "text")
		}
		out := call.Method().Output()
		switch key {
		case "panic":
			panic("responder bug")
		case "wrong-type":
			return call.Send(&emptypb.Empty{})
		case "nil":
			return call.Send(nil)
		case "two":
			_ = call.Send(mustMsg(out, `{}`))
			_ = call.Send(mustMsg(out, `{}`))
			return nil
		case "none":
			return nil
		case "plain-error":
			return errBoom
		case "late-send":
			go func() { _ = call.Send(mustMsg(out, `{}`)) }()
			return status.Error(codes.Aborted, "returned before the goroutine sent")
		default:
			return call.Send(mustMsg(out, `{"id": "ok"}`))
		}
	})
}

func TestServerSurvivesMisbehavingResponders(t *testing.T) {
	var logs bytes.Buffer
	var logMu sync.Mutex
	logger := slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &logMu}, nil))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	src := protosetSource(t)
	if _, err := RegisterSource(testContext(t), srv, src, misbehaving(), WithLogger(logger)); err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	cc := dial(t, lis.Addr().String())

	tests := []struct {
		id      string
		code    codes.Code
		message string
	}{
		{"panic", codes.Internal, "responder panicked answering acme.Users/Get: responder bug"},
		{"wrong-type", codes.Internal, "responder sent a google.protobuf.Empty for acme.Users/Get, which returns acme.User"},
		{"nil", codes.Internal, "responder sent a nil message for acme.Users/Get"},
		{"two", codes.Internal, "responder sent a second response for acme.Users/Get, which returns one"},
		{"none", codes.Internal, "responder sent no response for acme.Users/Get, which returns one"},
		{"plain-error", codes.Unknown, "boom"},
		{"late-send", codes.Aborted, "returned before the goroutine sent"},
		{"fine", codes.OK, ""},
	}
	for _, tc := range tests {
		rec := &recorder{}
		if err := InvokeRPC(testContext(t), src, cc, "acme.Users/Get", nil, rec, supply(src, `{"id": "`+tc.id+`"}`)); err != nil {
			t.Fatal(err)
		}
		if rec.status.Code() != tc.code || rec.status.Message() != tc.message {
			t.Errorf("%s: status %v %q, want %v %q", tc.id, rec.status.Code(), rec.status.Message(), tc.code, tc.message)
		}
	}
	// A panic in a streaming method fails only that call too.
	rec := &recorder{}
	if err := InvokeRPC(testContext(t), src, cc, "acme.Users/Chat", nil, rec, supply(src, `{"text": "panic"}`)); err != nil {
		t.Fatal(err)
	}
	if rec.status.Code() != codes.Internal {
		t.Errorf("panicking bidi: %v, want Internal", rec.status.Err())
	}
	logMu.Lock()
	defer logMu.Unlock()
	if !strings.Contains(logs.String(), "responder panicked") || !strings.Contains(logs.String(), "method=acme.Users/Get") {
		t.Errorf("the panic was not logged:\n%s", logs.String())
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestRegisterServicesRefusesDuplicates(t *testing.T) {
	srv := grpc.NewServer()
	services, err := Services(testContext(t), protosetSource(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := RegisterServices(srv, services, corpusResponder()); err != nil {
		t.Fatal(err)
	}
	err = RegisterServices(srv, services[:1], corpusResponder())
	if err == nil || !strings.Contains(err.Error(), "acme.Users is already registered") {
		t.Errorf("second registration: %v", err)
	}
	if err := RegisterServices(srv, nil, nil); err == nil {
		t.Error("nil Responder accepted")
	}
}

func TestServedReflectionV1Alpha(t *testing.T) {
	cc := dial(t, startServer(t, corpusResponder()))
	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	client := grpcreflect.NewClientV1Alpha(ctx, reflectionv1alpha.NewServerReflectionClient(cc))
	defer client.Reset()
	names, err := client.ListServices()
	if err != nil {
		t.Fatal(err)
	}
	got := make([]string, len(names))
	for i, n := range names {
		got[i] = string(n)
	}
	sort.Strings(got)
	want := "acme.Users gitaly.OperationService gitaly.RefService gitaly.RefTransaction gitaly.SSHService gitaly.SmartHTTPService grpc.health.v1.Health grpc.reflection.v1.ServerReflection grpc.reflection.v1alpha.ServerReflection"
	if strings.Join(got, " ") != want {
		t.Errorf("v1alpha services = %v, want %s", got, want)
	}
	fd, err := client.FileContainingSymbol("gitaly.RefTransaction")
	if err != nil {
		t.Fatal(err)
	}
	if fd.Path() != "gitaly/transaction.proto" || fd.Services().ByName("RefTransaction") == nil {
		t.Errorf("file = %s", fd.Path())
	}
	// Symbols of the program itself (not in the schema) are not served.
	if _, err := client.FileContainingSymbol("google.rpc.ErrorInfo"); err == nil {
		t.Error("reflection served google.rpc.ErrorInfo, which is not in the schema")
	}
	// The health service's own descriptor is served.
	if _, err := client.FileContainingSymbol("grpc.health.v1.Health"); err != nil {
		t.Errorf("health descriptor: %v", err)
	}
}

func TestServedHealth(t *testing.T) {
	cc := dial(t, startServer(t, corpusResponder()))
	hc := healthpb.NewHealthClient(cc)
	for _, svc := range []string{"", "acme.Users", "gitaly.RefTransaction"} {
		resp, err := hc.Check(testContext(t), &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("Check(%q) = %v, %v; want SERVING", svc, resp, err)
		}
	}
	_, err := hc.Check(testContext(t), &healthpb.HealthCheckRequest{Service: "nope.Nope"})
	if status.Code(err) != codes.NotFound {
		t.Errorf("Check(nope.Nope) = %v, want NotFound", err)
	}
}

// A registrar that cannot list its services still gets a useful reflection
// listing.
type plainRegistrar struct{ srv *grpc.Server }

func (p plainRegistrar) RegisterService(sd *grpc.ServiceDesc, impl any) {
	p.srv.RegisterService(sd, impl)
}

func TestReflectionOnPlainRegistrar(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	src := filesSource(t)
	services, err := Services(testContext(t), src)
	if err != nil {
		t.Fatal(err)
	}
	reg := plainRegistrar{srv}
	if err := RegisterServices(reg, services[:1], corpusResponder()); err != nil {
		t.Fatal(err)
	}
	RegisterReflection(reg, services[:1])
	RegisterHealth(reg, services[:1])
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	rs := NewSourceFromReflection(context.Background(), dial(t, lis.Addr().String()), nil)
	defer rs.Close()
	names, err := rs.ListServices(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	want := []protoreflect.FullName{"acme.Users", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"}
	if len(names) != len(want) {
		t.Fatalf("services = %v, want %v", names, want)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Errorf("services = %v, want %v", names, want)
		}
	}
	if _, err := FindMethod(testContext(t), rs, "acme.Users/Chat"); err != nil {
		t.Error(err)
	}
	if _, err := rs.FindSymbol(testContext(t), "gitaly.RefService"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unregistered service: %v, want ErrNotFound", err)
	}
}

func TestCallSeesMethodMetadataPeerAndOneRequest(t *testing.T) {
	type seen struct {
		method, md, addr string
		backchannel      uint64
		second           error
	}
	got := make(chan seen, 1)
	r := ResponderFunc(func(call Call) error {
		req, err := call.Recv()
		if err != nil {
			return err
		}
		_, second := call.Recv()
		got <- seen{
			method:      MethodName(call.Method()),
			md:          strings.Join(call.Metadata().Get("x-transaction"), ","),
			addr:        call.Peer().Addr,
			backchannel: call.Peer().BackchannelID,
			second:      second,
		}
		_ = req
		return call.Send(mustMsg(call.Method().Output(), `{"state": "COMMIT"}`))
	})
	src := protosetSource(t)
	cc := dial(t, startServer(t, r))
	rec := &recorder{}
	err := InvokeRPC(testContext(t), src, cc, "gitaly.RefTransaction/VoteTransaction", metadata.Pairs("x-transaction", "17"), rec,
		supply(src, `{"transaction_id": "17", "reference_updates_hash": "abc"}`))
	if err != nil || rec.status.Code() != codes.OK {
		t.Fatalf("invoke: %v, %v", err, rec.status.Err())
	}
	s := <-got
	if s.method != "gitaly.RefTransaction/VoteTransaction" || s.md != "17" || !strings.HasPrefix(s.addr, "127.0.0.1:") ||
		s.backchannel != 0 || s.second != io.EOF {
		t.Errorf("responder saw %+v", s)
	}
}

// A Responder that gives up because the caller went away reports CANCELLED
// (not UNKNOWN) to the server's interceptors and logs, and the server's
// interceptors run for every call kind.
func TestInterceptorsSeeEveryCallKind(t *testing.T) {
	type seen struct {
		method string
		err    error
	}
	calls := make(chan seen, 10)
	unary := grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if _, ok := req.(proto.Message); !ok {
			t.Errorf("unary interceptor got a %T request", req)
		}
		resp, err := handler(ctx, req)
		calls <- seen{info.FullMethod, err}
		return resp, err
	})
	stream := grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		err := handler(srv, ss)
		if !strings.Contains(info.FullMethod, "ServerReflection") {
			calls <- seen{info.FullMethod, err}
		}
		return err
	})
	started := make(chan struct{}, 1)
	inner := corpusResponder()
	r := ResponderFunc(func(call Call) error {
		if MethodName(call.Method()) == "gitaly.RefTransaction/VoteTransaction" {
			started <- struct{}{}
			<-call.Context().Done()
			return fmt.Errorf("waiting for the vote: %w", call.Context().Err())
		}
		return inner.Respond(call)
	})
	src := protosetSource(t)
	cc := dial(t, startServer(t, r, unary, stream))

	for _, m := range []string{"acme.Users/Get", "acme.Users/List", "acme.Users/Import", "acme.Users/Chat"} {
		rec := &recorder{}
		if err := InvokeRPC(testContext(t), src, cc, m, nil, rec, nil); err != nil || rec.status.Code() != codes.OK {
			t.Fatalf("%s: %v %v", m, err, rec.status.Err())
		}
		if got := <-calls; got.method != "/"+m || got.err != nil {
			t.Errorf("interceptor saw %+v, want /%s and no error", got, m)
		}
	}

	ctx, cancel := context.WithCancel(testContext(t))
	go func() {
		<-started
		cancel()
	}()
	rec := &recorder{}
	if err := InvokeRPC(ctx, src, cc, "gitaly.RefTransaction/VoteTransaction", nil, rec, nil); err != nil {
		t.Fatal(err)
	}
	if rec.status.Code() != codes.Canceled {
		t.Errorf("client status %v, want Canceled", rec.status.Err())
	}
	if got := <-calls; status.Code(got.err) != codes.Canceled {
		t.Errorf("interceptor saw %+v, want Canceled", got)
	}
}

func TestProtosetWithoutWellKnownTypesUsesBuiltIns(t *testing.T) {
	full, err := NewSourceFromProtosets(corpusDir + "/corpus.protoset")
	if err != nil {
		t.Fatal(err)
	}
	set := full.FileDescriptorSet()
	var trimmed []*descriptorpb.FileDescriptorProto
	for _, f := range set.File {
		if !strings.HasPrefix(f.GetName(), "google/protobuf/") {
			trimmed = append(trimmed, f)
		}
	}
	if len(trimmed) == len(set.File) {
		t.Fatal("the corpus protoset has no well-known types to trim")
	}
	set.File = trimmed
	src, err := NewSourceFromFileDescriptorSet(set)
	if err != nil {
		t.Fatal(err)
	}
	m := dynamicpb.NewMessage(message(t, src, "acme.User"))
	if err := ParseJSON([]byte(`{"createdAt": "2024-01-01T00:00:00Z", "attributes": {"a": 1}}`), m, src.Types()); err != nil {
		t.Error(err)
	}
}
