package proxy_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/proxy"
)

// echoService answers all four kinds of call, with headers, trailers,
// statuses with details, and reports calls its callers cancelled.
type echoService struct {
	testgrpc.UnimplementedTestServiceServer
	// arrived receives the deadline of each blocked UnaryCall (payload
	// "block") when it arrives; zero for none.
	arrived chan time.Time
	// ended receives "Method: context error" for each call that ended
	// because its context did.
	ended chan string
}

func newEchoService() *echoService {
	return &echoService{arrived: make(chan time.Time, 16), ended: make(chan string, 16)}
}

func (s *echoService) UnaryCall(ctx context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	if st := req.GetResponseStatus(); st != nil {
		s2, err := status.New(codes.Code(st.GetCode()), st.GetMessage()).WithDetails(&errdetails.ErrorInfo{Reason: "TESTED", Domain: "bcctl.test"})
		if err != nil {
			return nil, err
		}
		grpc.SetTrailer(ctx, metadata.Pairs("x-err-trailer", "yes"))
		return nil, s2.Err()
	}
	if string(req.GetPayload().GetBody()) == "block" {
		dl, _ := ctx.Deadline()
		s.arrived <- dl
		<-ctx.Done()
		s.ended <- "UnaryCall: " + ctx.Err().Error()
		return nil, ctx.Err()
	}
	left := "none"
	if dl, ok := ctx.Deadline(); ok {
		left = strconv.FormatInt(time.Until(dl).Milliseconds(), 10)
	}
	grpc.SetHeader(ctx, metadata.Pairs("x-kind", "unary"))
	grpc.SetTrailer(ctx, metadata.Pairs("x-kind-end", "unary"))
	return &testgrpc.SimpleResponse{Payload: req.GetPayload(), Hostname: left}, nil
}

func (s *echoService) StreamingOutputCall(req *testgrpc.StreamingOutputCallRequest, stream testgrpc.TestService_StreamingOutputCallServer) error {
	stream.SetHeader(metadata.Pairs("x-kind", "server-stream"))
	for _, p := range req.GetResponseParameters() {
		body := bytes.Repeat([]byte{'x'}, int(p.GetSize()))
		if err := stream.Send(&testgrpc.StreamingOutputCallResponse{Payload: &testgrpc.Payload{Body: body}}); err != nil {
			return err
		}
	}
	if st := req.GetResponseStatus(); st != nil {
		return status.Error(codes.Code(st.GetCode()), st.GetMessage())
	}
	return nil
}

func (s *echoService) StreamingInputCall(stream testgrpc.TestService_StreamingInputCallServer) error {
	total := 0
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&testgrpc.StreamingInputCallResponse{AggregatedPayloadSize: int32(total)})
		}
		if err != nil {
			return err
		}
		total += len(req.GetPayload().GetBody())
	}
}

func (s *echoService) FullDuplexCall(stream testgrpc.TestService_FullDuplexCallServer) error {
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			stream.SetTrailer(metadata.Pairs("x-kind-end", "bidi"))
			return nil
		}
		if err != nil {
			if ctxErr := stream.Context().Err(); ctxErr != nil {
				s.ended <- "FullDuplexCall: " + ctxErr.Error()
			}
			return err
		}
		if err := stream.Send(&testgrpc.StreamingOutputCallResponse{Payload: req.GetPayload()}); err != nil {
			return err
		}
	}
}

// exercise makes calls of all four kinds on c and checks what comes back.
func exercise(ctx context.Context, c testgrpc.TestServiceClient) error {
	// Unary, with a deadline the callee sees.
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var header, trailer metadata.MD
	resp, err := c.UnaryCall(dctx, payload("one"), grpc.Header(&header), grpc.Trailer(&trailer))
	if err != nil {
		return fmt.Errorf("unary: %w", err)
	}
	if got := string(resp.GetPayload().GetBody()); got != "one" {
		return fmt.Errorf("unary: got %q, want %q", got, "one")
	}
	if left, err := strconv.Atoi(resp.GetHostname()); err != nil || left <= 0 || left > 30000 {
		return fmt.Errorf("unary: the callee saw %q ms left of a 30s deadline", resp.GetHostname())
	}
	if got := header.Get("x-kind"); len(got) != 1 || got[0] != "unary" {
		return fmt.Errorf("unary: header x-kind %q", got)
	}
	if got := trailer.Get("x-kind-end"); len(got) != 1 || got[0] != "unary" {
		return fmt.Errorf("unary: trailer x-kind-end %q", got)
	}

	// Unary failing with details and a trailer.
	trailer = nil
	_, err = c.UnaryCall(ctx, &testgrpc.SimpleRequest{ResponseStatus: &testgrpc.EchoStatus{Code: int32(codes.FailedPrecondition), Message: "not now"}}, grpc.Trailer(&trailer))
	st := status.Convert(err)
	if st.Code() != codes.FailedPrecondition || st.Message() != "not now" {
		return fmt.Errorf("failing unary: got %v, want FAILED_PRECONDITION \"not now\"", err)
	}
	if d := st.Details(); len(d) != 1 || d[0].(*errdetails.ErrorInfo).GetReason() != "TESTED" {
		return fmt.Errorf("failing unary: details %v, want one ErrorInfo TESTED", d)
	}
	if got := trailer.Get("x-err-trailer"); len(got) != 1 {
		return fmt.Errorf("failing unary: trailer x-err-trailer %q", got)
	}

	// Server streaming, messages of several sizes, then a status.
	sizes := []int32{1, 1000, 100000, 0}
	params := make([]*testgrpc.ResponseParameters, len(sizes))
	for i, n := range sizes {
		params[i] = &testgrpc.ResponseParameters{Size: n}
	}
	ss, err := c.StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{
		ResponseParameters: params,
		ResponseStatus:     &testgrpc.EchoStatus{Code: int32(codes.ResourceExhausted), Message: "enough"},
	})
	if err != nil {
		return fmt.Errorf("server stream: %w", err)
	}
	if h, err := ss.Header(); err != nil || len(h.Get("x-kind")) != 1 {
		return fmt.Errorf("server stream: header %v, %v", h, err)
	}
	for i, n := range sizes {
		m, err := ss.Recv()
		if err != nil {
			return fmt.Errorf("server stream message %d: %w", i, err)
		}
		if got := len(m.GetPayload().GetBody()); got != int(n) {
			return fmt.Errorf("server stream message %d: %d bytes, want %d", i, got, n)
		}
	}
	if _, err := ss.Recv(); status.Code(err) != codes.ResourceExhausted {
		return fmt.Errorf("server stream end: got %v, want RESOURCE_EXHAUSTED", err)
	}

	// Client streaming.
	cs, err := c.StreamingInputCall(ctx)
	if err != nil {
		return fmt.Errorf("client stream: %w", err)
	}
	for _, n := range []int{10, 20, 30} {
		if err := cs.Send(&testgrpc.StreamingInputCallRequest{Payload: &testgrpc.Payload{Body: make([]byte, n)}}); err != nil {
			return fmt.Errorf("client stream send: %w", err)
		}
	}
	agg, err := cs.CloseAndRecv()
	if err != nil || agg.GetAggregatedPayloadSize() != 60 {
		return fmt.Errorf("client stream: got %v, %v; want 60 bytes", agg, err)
	}

	// Bidirectional, message by message, then half-close.
	bs, err := c.FullDuplexCall(ctx)
	if err != nil {
		return fmt.Errorf("bidi: %w", err)
	}
	for _, body := range []string{"a", "b", "c"} {
		if err := bs.Send(&testgrpc.StreamingOutputCallRequest{Payload: &testgrpc.Payload{Body: []byte(body)}}); err != nil {
			return fmt.Errorf("bidi send %s: %w", body, err)
		}
		m, err := bs.Recv()
		if err != nil || string(m.GetPayload().GetBody()) != body {
			return fmt.Errorf("bidi echo of %s: %v, %v", body, m, err)
		}
	}
	if err := bs.CloseSend(); err != nil {
		return fmt.Errorf("bidi half-close: %w", err)
	}
	if _, err := bs.Recv(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("bidi end: got %v, want EOF", err)
	}
	if got := bs.Trailer().Get("x-kind-end"); len(got) != 1 {
		return fmt.Errorf("bidi trailer x-kind-end %q", got)
	}
	return nil
}

// cancelBidi starts a bidirectional call on c, waits for one echo and
// cancels it.
func cancelBidi(ctx context.Context, c testgrpc.TestServiceClient) error {
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	bs, err := c.FullDuplexCall(cctx)
	if err != nil {
		return err
	}
	if err := bs.Send(&testgrpc.StreamingOutputCallRequest{Payload: &testgrpc.Payload{Body: []byte("x")}}); err != nil {
		return err
	}
	if _, err := bs.Recv(); err != nil {
		return err
	}
	cancel()
	if _, err := bs.Recv(); status.Code(err) != codes.Canceled {
		return fmt.Errorf("after cancel: got %v, want CANCELED", err)
	}
	return nil
}

// drivingUpstream echoes forward calls, and for a UnaryCall whose payload
// names a reverse scenario runs it against the caller's backchannel.
type drivingUpstream struct {
	*echoService
	u *upstream
	// release ends the reverse call of "deadline reverse".
	release chan struct{}
}

func (s *drivingUpstream) UnaryCall(ctx context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	var scenario func(context.Context, testgrpc.TestServiceClient) error
	switch string(req.GetPayload().GetBody()) {
	case "exercise reverse":
		scenario = exercise
	case "cancel reverse":
		scenario = cancelBidi
	case "deadline reverse":
		scenario = func(ctx context.Context, c testgrpc.TestServiceClient) error {
			// The deadline is far enough that the call arrives before
			// it (TestDeadlines checks the client sees it), and the test
			// releases the call then.
			dctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			go func() {
				select {
				case <-s.release:
					cancel()
				case <-dctx.Done():
				}
			}()
			_, err := c.UnaryCall(dctx, payload("block"))
			if status.Code(err) != codes.Canceled {
				return fmt.Errorf("got %v, want CANCELED once released", err)
			}
			return nil
		}
	default:
		return s.echoService.UnaryCall(ctx, req)
	}
	bc, err := s.u.callerBackchannel(ctx)
	if err != nil {
		return nil, err
	}
	if err := scenario(ctx, bc); err != nil {
		return nil, status.Errorf(codes.Internal, "reverse %s: %v", req.GetPayload().GetBody(), err)
	}
	return payloadResponse("ok"), nil
}

// kindsEnv is a proxy in front of a drivingUpstream with one multiplexed
// client whose backchannel echoes.
type kindsEnv struct {
	*proxyEnv
	upstream                 *drivingUpstream
	upstreamEcho, clientEcho *echoService
	client                   testgrpc.TestServiceClient
}

func newKindsEnv(t *testing.T, tr transport) *kindsEnv {
	up := &drivingUpstream{echoService: newEchoService(), release: make(chan struct{}, 1)}
	u := startUpstream(t, tr, func(*backchannel.Registry) testgrpc.TestServiceServer { return up })
	up.u = u
	env := startProxy(t, tr, u.lis.Addr())
	clientEcho := newEchoService()
	cc := dialMux(t, tr, env.lis, clientEcho)
	return &kindsEnv{proxyEnv: env, upstream: up, upstreamEcho: up.echoService, clientEcho: clientEcho, client: testgrpc.NewTestServiceClient(cc)}
}

// TestCallKinds relays unary, server-streaming, client-streaming and
// bidirectional calls forward and reverse, with headers, trailers,
// deadlines and statuses with details.
func TestCallKinds(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			ctx := testContext(t)
			env := newKindsEnv(t, tr)
			t.Run("forward", func(t *testing.T) {
				if err := exercise(ctx, env.client); err != nil {
					t.Fatal(err)
				}
			})
			t.Run("reverse", func(t *testing.T) {
				if _, err := env.client.UnaryCall(ctx, payload("exercise reverse")); err != nil {
					t.Fatal(err)
				}
				// exercise makes 5 calls; the driving forward call is the 11th.
				ended := env.rec.endedCalls(t, 11)
				var reverse []*proxy.Call
				var driver *proxy.Call
				for _, c := range ended[5:] {
					switch c.Dir {
					case calls.Reverse:
						reverse = append(reverse, c)
					case calls.Forward:
						driver = c
					}
				}
				if len(reverse) != 5 || driver == nil {
					t.Fatalf("got %d reverse calls and driver %v; want 5 and the driving call", len(reverse), driver)
				}
				for _, c := range reverse {
					if c.Cause != driver.ID {
						t.Errorf("reverse %s: cause %d, want %d", c.Method, c.Cause, driver.ID)
					}
				}
			})
		})
	}
}

// TestCancellation: a caller that cancels, forward or reverse, cancels the
// callee's call, and the proxy says the caller ended it.
func TestCancellation(t *testing.T) {
	ctx := testContext(t)
	env := newKindsEnv(t, transports[0])
	const bidi = "/grpc.testing.TestService/FullDuplexCall"

	t.Run("forward", func(t *testing.T) {
		if err := cancelBidi(ctx, env.client); err != nil {
			t.Fatal(err)
		}
		if got, want := <-env.upstreamEcho.ended, "FullDuplexCall: context canceled"; got != want {
			t.Errorf("upstream: got %q, want %q", got, want)
		}
		c := env.rec.endedCall(t, bidi, func(c *proxy.Call) bool { return c.Dir == calls.Forward })
		if c.Status.Code() != codes.Canceled || c.EndedBy != proxy.SideClient || c.Gone {
			t.Errorf("journal: status %v, ended by %q (gone %v); want CANCELED by the client", c.Status, c.EndedBy, c.Gone)
		}
	})
	t.Run("reverse", func(t *testing.T) {
		if _, err := env.client.UnaryCall(ctx, payload("cancel reverse")); err != nil {
			t.Fatal(err)
		}
		if got, want := <-env.clientEcho.ended, "FullDuplexCall: context canceled"; got != want {
			t.Errorf("client: got %q, want %q", got, want)
		}
		c := env.rec.endedCall(t, bidi, func(c *proxy.Call) bool { return c.Dir == calls.Reverse })
		if c.Status.Code() != codes.Canceled || c.EndedBy != proxy.SideUpstream {
			t.Errorf("journal: status %v, ended by %q; want CANCELED by the upstream", c.Status, c.EndedBy)
		}
	})
}

// TestDeadlines: a deadline that passes ends the call on both sides of the
// proxy, forward and reverse.
// TestDeadlines: a call's deadline reaches the callee through the proxy,
// forward and reverse: the callee's context has the proxy's copy of it (no
// later than the caller's), which gRPC ends as a direct caller's would. The
// deadlines are far off, so that no call can miss them on its way (a short
// one could pass before the call reached the callee, which then never saw
// it); the calls are ended by cancellation once the deadline is checked.
func TestDeadlines(t *testing.T) {
	ctx := testContext(t)
	env := newKindsEnv(t, transports[0])

	t.Run("forward", func(t *testing.T) {
		start := time.Now()
		dctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		deadline, _ := dctx.Deadline() // the test's own, when that is sooner
		done := make(chan error, 1)
		go func() {
			_, err := env.client.UnaryCall(dctx, payload("block"))
			done <- err
		}()
		checkDeadline(t, ctx, env.upstreamEcho, deadline, start)
		cancel()
		if err := <-done; status.Code(err) != codes.Canceled {
			t.Errorf("got %v, want CANCELED", err)
		}
		if got := <-env.upstreamEcho.ended; got != "UnaryCall: context canceled" {
			t.Errorf("upstream: got %q, want the call's context cancelled", got)
		}
	})
	t.Run("reverse", func(t *testing.T) {
		start := time.Now()
		done := make(chan error, 1)
		go func() {
			_, err := env.client.UnaryCall(ctx, payload("deadline reverse"))
			done <- err
		}()
		// The upstream gives it a minute once the forward call has reached
		// it, or what is left of the test's deadline, which its context
		// has (a copy of) when that is sooner.
		deadline := start.Add(time.Minute)
		if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
			deadline = dl
		}
		checkDeadline(t, ctx, env.clientEcho, deadline, start)
		env.upstream.release <- struct{}{}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if got := <-env.clientEcho.ended; got != "UnaryCall: context canceled" {
			t.Errorf("client: got %q, want the call's context cancelled", got)
		}
	})
}

// checkDeadline waits for a blocked call to arrive at callee and checks
// that it has the caller's deadline, as each hop copies it: a hop takes the
// time left when the call left the last one, so the copy is later by the
// time the call was on its way (at most since start), and otherwise the
// same (gRPC sends it to the microsecond).
func checkDeadline(t *testing.T, ctx context.Context, callee *echoService, deadline, start time.Time) {
	t.Helper()
	select {
	case dl := <-callee.arrived:
		onTheWay := time.Since(start)
		if dl.IsZero() || dl.Before(deadline.Add(-time.Millisecond)) || dl.After(deadline.Add(onTheWay+time.Millisecond)) {
			t.Errorf("the callee's deadline is %v, want the caller's %v (plus at most the %v the call took to arrive)", dl, deadline, onTheWay)
		}
	case <-ctx.Done():
		t.Fatal("the call never reached the callee")
	}
}
