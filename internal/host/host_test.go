package host

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	_ "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/corpus"
	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/testnet"
	"github.com/bcctl/bcctl/listenmux"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var corpusSchema = func() *dynamic.FileSource {
	src, err := dynamic.NewSourceFromProtosetBytes(corpus.Protoset)
	if err != nil {
		panic(err)
	}
	return src
}()

func service(t *testing.T, name string) protoreflect.ServiceDescriptor {
	t.Helper()
	d, err := corpusSchema.FindSymbol(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return d.(protoreflect.ServiceDescriptor)
}

func method(t *testing.T, name string) protoreflect.MethodDescriptor {
	t.Helper()
	md, err := dynamic.FindMethod(context.Background(), corpusSchema, name)
	if err != nil {
		t.Fatal(err)
	}
	return md
}

// server is an OperationService whose UserCreateBranch calls VoteTransaction on the
// caller's backchannel and answers with the vote's outcome in the branch
// name.
type server struct {
	addr string
	lis  *testnet.CrashListener
	srv  *grpc.Server
	reg  *backchannel.Registry
	done chan struct{}
	once sync.Once
}

func startServer(t *testing.T, plain bool) *server {
	t.Helper()
	s := &server{reg: backchannel.NewRegistry(), done: make(chan struct{})}
	if plain {
		s.srv = grpc.NewServer()
	} else {
		mux := listenmux.New(insecure.NewCredentials())
		mux.Register(backchannel.NewServerHandshaker(nil, s.reg, nil))
		s.srv = grpc.NewServer(grpc.Creds(mux))
	}
	vote := method(t, "gitaly.RefTransaction/VoteTransaction")
	err := dynamic.RegisterServices(s.srv, []protoreflect.ServiceDescriptor{service(t, "gitaly.OperationService")}, dynamic.ResponderFunc(func(call dynamic.Call) error {
		if _, err := call.Recv(); err != nil {
			return err
		}
		id, err := backchannel.GetPeerID(call.Context())
		if err != nil {
			return status.Error(codes.FailedPrecondition, "not multiplexed")
		}
		cc, err := s.reg.Backchannel(id)
		if err != nil {
			return err
		}
		reply := dynamicpb.NewMessage(vote.Output())
		if err := cc.Invoke(call.Context(), dynamic.FullMethod(vote), dynamicpb.NewMessage(vote.Input()), reply); err != nil {
			return status.Errorf(codes.Aborted, "vote: %v", status.Convert(err).Message())
		}
		out := dynamicpb.NewMessage(call.Method().Output())
		st := reply.ProtoReflect().Get(vote.Output().Fields().ByName("state")).Enum()
		branch := dynamicpb.NewMessage(call.Method().Output().Fields().ByName("branch").Message())
		branch.Set(branch.Descriptor().Fields().ByName("name"), protoreflect.ValueOfBytes([]byte(vote.Output().Fields().ByName("state").Enum().Values().ByNumber(st).Name())))
		out.Set(out.Descriptor().Fields().ByName("branch"), protoreflect.ValueOfMessage(branch))
		return call.Send(out)
	}), dynamic.WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = lis.Addr().String()
	s.lis = testnet.NewCrashListener(lis)
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(s.lis)
	}()
	t.Cleanup(s.stop)
	return s
}

func (s *server) stop() {
	s.once.Do(func() {
		s.srv.Stop()
		<-s.done
	})
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func dial(t *testing.T, addr string, noMux bool) (*Conn, error) {
	t.Helper()
	return Dial(ctxT(t), Config{Address: addr, Creds: insecure.NewCredentials(), NoMux: noMux, ConnectTimeout: time.Minute})
}

// voteResponder answers every VoteTransaction with state.
func voteResponder(state string) dynamic.Responder {
	return dynamic.ResponderFunc(func(call dynamic.Call) error {
		if _, err := call.Recv(); err != nil && err != io.EOF {
			return err
		}
		out := dynamicpb.NewMessage(call.Method().Output())
		f := out.Descriptor().Fields().ByName("state")
		out.Set(f, protoreflect.ValueOfEnum(f.Enum().Values().ByName(protoreflect.Name(state)).Number()))
		return call.Send(out)
	})
}

func createBranch(ctx context.Context, t *testing.T, c *Conn) (string, error) {
	md := method(t, "gitaly.OperationService/UserCreateBranch")
	out := dynamicpb.NewMessage(md.Output())
	if err := c.ClientConn().Invoke(ctx, dynamic.FullMethod(md), dynamicpb.NewMessage(md.Input()), out); err != nil {
		return "", err
	}
	branch := out.Get(md.Output().Fields().ByName("branch")).Message()
	return string(branch.Get(branch.Descriptor().Fields().ByName("name")).Bytes()), nil
}

func TestHostAnswersReverseCalls(t *testing.T) {
	s := startServer(t, false)
	c, err := dial(t, s.addr, false)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !c.Multiplexed() {
		t.Error("Multiplexed() = false")
	}
	if err := c.Host(Backchannel{Services: []protoreflect.ServiceDescriptor{service(t, "gitaly.RefTransaction")}, Responder: voteResponder("STOP")}); err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	for i := 1; i <= 3; i++ {
		got, err := createBranch(ctx, t, c)
		if err != nil || got != "STOP" {
			t.Fatalf("call %d: %q, %v; want the vote STOP", i, got, err)
		}
		if err := c.WaitReverseCalls(ctx, i); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.ReverseCalls(); n != 3 {
		t.Errorf("ReverseCalls() = %d, want 3", n)
	}
	if err := c.Host(Backchannel{Responder: voteResponder("COMMIT")}); err == nil {
		t.Error("a second Host succeeded")
	}
}

// TestReverseCallsWaitForHost makes the server call back before the
// backchannel is hosted: the call is answered once Host is called.
func TestReverseCallsWaitForHost(t *testing.T) {
	s := startServer(t, false)
	c, err := dial(t, s.addr, false)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := ctxT(t)
	type result struct {
		name string
		err  error
	}
	res := make(chan result, 1)
	go func() {
		name, err := createBranch(ctx, t, c)
		res <- result{name, err}
	}()
	select {
	case r := <-res:
		t.Fatalf("the forward call ended before the backchannel was hosted: %+v", r)
	default:
	}
	if err := c.Host(Backchannel{Services: []protoreflect.ServiceDescriptor{service(t, "gitaly.RefTransaction")}, Responder: voteResponder("ABORT")}); err != nil {
		t.Fatal(err)
	}
	if r := <-res; r.err != nil || r.name != "ABORT" {
		t.Errorf("forward call: %+v, want ABORT", r)
	}
}

func TestUnhostedMethodsAreReported(t *testing.T) {
	s := startServer(t, false)
	c, err := dial(t, s.addr, false)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var mu sync.Mutex
	var events []*calls.Event
	err = c.Host(Backchannel{
		Responder: voteResponder("COMMIT"),
		Observer: calls.ObserverFunc(func(ev *calls.Event) {
			mu.Lock()
			defer mu.Unlock()
			events = append(events, ev)
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = createBranch(ctxT(t), t, c)
	if status.Code(err) != codes.Aborted || !strings.Contains(err.Error(), "the backchannel hosts no services, so not gitaly.RefTransaction/VoteTransaction") {
		t.Errorf("forward call error = %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) != 1 || events[0].Method != "gitaly.RefTransaction/VoteTransaction" || events[0].Status.Code() != codes.Unimplemented || events[0].Dir != calls.Reverse {
		t.Errorf("events = %+v", events)
	}
}

func TestDialRefusedFailsAtOnce(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	// The connect timeout is a minute, the test's context 20s: only an
	// immediate failure reports the refusal itself.
	_, err = dial(t, addr, false)
	if !errors.Is(err, ErrConnect) || !strings.Contains(err.Error(), "connect: connection refused") {
		t.Errorf("Dial = %v, want ErrConnect with the refusal", err)
	}
}

func TestDialPlainServer(t *testing.T) {
	s := startServer(t, true)
	_, err := dial(t, s.addr, false)
	if !errors.Is(err, ErrNotMultiplexing) {
		t.Fatalf("Dial = %v, want ErrNotMultiplexing", err)
	}
	c, err := dial(t, s.addr, true)
	if err != nil {
		t.Fatalf("Dial with NoMux: %v", err)
	}
	defer c.Close()
	if c.Multiplexed() {
		t.Error("Multiplexed() = true with NoMux")
	}
	// Without a backchannel the server cannot call back.
	if _, err := createBranch(ctxT(t), t, c); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("forward call error = %v, want FAILED_PRECONDITION", err)
	}
}

func TestLostWhenTheServerGoes(t *testing.T) {
	s := startServer(t, false)
	c, err := dial(t, s.addr, false)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Host(Backchannel{Responder: voteResponder("COMMIT")}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Lost():
		t.Fatal("lost before the server stopped")
	default:
	}
	s.stop()
	select {
	case <-c.Lost():
	case <-ctxT(t).Done():
		t.Fatal("Lost was not closed after the server stopped")
	}
}

// TestBackchannelClosedWhenTheServerDies: a reverse call waiting for its
// answer when the server's connection is cut sees its context end, and by
// then BackchannelClosed says the session is gone (so the call can be
// told apart from one its caller cancelled).
func TestBackchannelClosedWhenTheServerDies(t *testing.T) {
	s := startServer(t, false)
	c, err := dial(t, s.addr, false)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waiting := make(chan bool, 1)
	gone := make(chan bool, 1)
	err = c.Host(Backchannel{Services: []protoreflect.ServiceDescriptor{service(t, "gitaly.RefTransaction")},
		Responder: dynamic.ResponderFunc(func(call dynamic.Call) error {
			waiting <- c.BackchannelClosed()
			<-call.Context().Done()
			gone <- c.BackchannelClosed()
			return call.Context().Err()
		})})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	done := make(chan error, 1)
	go func() {
		_, err := createBranch(ctx, t, c)
		done <- err
	}()
	if <-waiting {
		t.Fatal("BackchannelClosed before the server went")
	}
	s.lis.Crash()
	select {
	case closed := <-gone:
		if !closed {
			t.Error("the reverse call ended with the connection, but BackchannelClosed = false")
		}
	case <-ctx.Done():
		t.Fatal("the reverse call did not end when the connection was cut")
	}
	if err := <-done; err == nil {
		t.Error("the forward call succeeded without its server")
	}
}

func TestSniffing(t *testing.T) {
	settings := []byte{0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 5, 0, 0, 64, 0}
	yamuxAck := []byte{0, 1, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0}
	if !looksLikeHTTP2Settings(settings) {
		t.Error("an HTTP/2 SETTINGS frame was not recognised")
	}
	if looksLikeHTTP2Settings(yamuxAck) {
		t.Error("a yamux window update was taken for HTTP/2")
	}
	if !looksLikeTLSAlert([]byte{0x15, 0x03, 0x03, 0, 2}) || looksLikeTLSAlert(yamuxAck) {
		t.Error("TLS alert detection is wrong")
	}
}

func TestHostLeavesOutBuiltInServices(t *testing.T) {
	s := startServer(t, false)
	c, err := dial(t, s.addr, false)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tx := service(t, "gitaly.RefTransaction")
	if err := c.Host(Backchannel{Services: []protoreflect.ServiceDescriptor{tx, tx}, Responder: voteResponder("COMMIT")}); err == nil || !strings.Contains(err.Error(), "service gitaly.RefTransaction is given twice") {
		t.Errorf("Host with a service twice: %v", err)
	}
	health := healthService(t)
	if err := c.Host(Backchannel{Services: []protoreflect.ServiceDescriptor{health, tx}, Responder: voteResponder("COMMIT")}); err != nil {
		t.Fatal(err)
	}
	if got, err := createBranch(ctxT(t), t, c); err != nil || got != "COMMIT" {
		t.Errorf("forward call: %q, %v", got, err)
	}
}

func healthService(t *testing.T) protoreflect.ServiceDescriptor {
	t.Helper()
	d, err := protoregistry.GlobalFiles.FindDescriptorByName("grpc.health.v1.Health")
	if err != nil {
		t.Fatal(err)
	}
	return d.(protoreflect.ServiceDescriptor)
}
