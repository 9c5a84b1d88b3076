package backchannel_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/bcctl/bcctl/backchannel"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

// lineHandshaker takes the server-opened streams that begin with its
// magic: it answers the line that follows with "echo: LINE" and closes the
// stream, after Handshake has returned. With refuse set it refuses them.
type lineHandshaker struct {
	refuse bool
	wg     sync.WaitGroup
}

func (h *lineHandshaker) Magic() string { return "hello-world" }

func (h *lineHandshaker) Handshake(conn net.Conn, _ credentials.AuthInfo) (net.Conn, credentials.AuthInfo, error) {
	if h.refuse {
		return nil, nil, errors.New("refused")
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		defer conn.Close()
		line, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil {
			return
		}
		fmt.Fprintf(conn, "echo: %s", line)
	}()
	return nil, nil, credentials.ErrConnDispatched
}

// streamOpenerService answers UnaryCall by opening a stream on the
// caller's session, sending the request's payload, and returning the first
// replyLen bytes that come back (fewer if the stream ends first); then it
// makes a reverse call, so that the test sees gRPC and the other stream
// side by side. It reads no more, as Gitaly reads only its two-byte
// acknowledgement: a gRPC server that got bytes that are not HTTP/2 sends
// its SETTINGS frame and then waits for a preface that never comes.
const replyLen = len("echo:  ping\n")

type streamOpenerService struct {
	testgrpc.UnimplementedTestServiceServer
	registry *backchannel.Registry
}

func (s *streamOpenerService) UnaryCall(ctx context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	session, err := backchannel.GetYamuxSession(ctx)
	if err != nil {
		return nil, err
	}
	stream, err := session.Open()
	if err != nil {
		return nil, err
	}
	defer stream.Close()
	if _, err := stream.Write(req.GetPayload().GetBody()); err != nil {
		return nil, err
	}
	got := make([]byte, replyLen)
	n, err := io.ReadFull(stream, got)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, fmt.Errorf("read the stream: %w", err)
	}
	got = got[:n]
	conn, err := callerBackchannel(ctx, s.registry)
	if err != nil {
		return nil, err
	}
	reverse, err := testgrpc.NewTestServiceClient(conn).UnaryCall(ctx, payloadRequest("reverse"))
	if err != nil {
		return nil, fmt.Errorf("reverse call: %w", err)
	}
	return payloadResponse(string(got) + "|" + string(reverse.GetPayload().GetBody())), nil
}

// TestStreamHandshaker checks the client's routing of server-opened
// streams: those with the handshaker's magic go to it and stay open after
// the handshake, a refusal closes the stream, and every other stream still
// reaches the backchannel gRPC server (which, for bytes that are not
// HTTP/2, answers with its SETTINGS frame and hangs up).
func TestStreamHandshaker(t *testing.T) {
	const settingsFrame = "\x00\x00" // an HTTP/2 frame header with a short length
	tests := []struct {
		name     string
		register bool
		refuse   bool
		send     string
		want     func(got string) bool
		wantDesc string
	}{
		{name: "dispatched", register: true, send: "hello-world ping\n", want: eq("echo:  ping\n"), wantDesc: `"echo:  ping\n"`},
		{name: "refused", register: true, refuse: true, send: "hello-world ping\n", want: eq(""), wantDesc: "nothing (closed)"},
		{name: "other bytes reach gRPC", register: true, send: "not-a-magic\n", want: hasPrefix(settingsFrame), wantDesc: "an HTTP/2 frame"},
		{name: "without the option", send: "hello-world ping\n", want: hasPrefix(settingsFrame), wantDesc: "an HTTP/2 frame"},
	}
	forEachTransport(t, func(t *testing.T, tr transport) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				srv := startServer(t, tr, func(reg *backchannel.Registry) testgrpc.TestServiceServer {
					return &streamOpenerService{registry: reg}
				})
				h := &lineHandshaker{refuse: tt.refuse}
				var opts []backchannel.ClientHandshakerOption
				if tt.register {
					opts = append(opts, backchannel.WithStreamHandshaker(h))
				}
				handshaker := backchannel.NewClientHandshaker(nil, func() backchannel.Server {
					s := grpc.NewServer()
					testgrpc.RegisterTestServiceServer(s, &namedService{name: "client"})
					return s
				}, backchannel.DefaultConfiguration(), opts...)
				cc := dial(t, srv.addr, grpc.WithTransportCredentials(handshaker.ClientHandshake(tr.client(t))))

				resp, err := testgrpc.NewTestServiceClient(cc).UnaryCall(testContext(t), payloadRequest(tt.send))
				if err != nil {
					t.Fatalf("UnaryCall: %v", err)
				}
				got, reverse, _ := cutLast(string(resp.GetPayload().GetBody()), "|")
				if !tt.want(got) {
					t.Errorf("the server read %q from its stream, want %s", got, tt.wantDesc)
				}
				if want := "client:reverse"; reverse != want {
					t.Errorf("reverse call beside the stream answered %q, want %q", reverse, want)
				}
				cc.Close()
				h.wg.Wait()
			})
		}
	})
}

func eq(want string) func(string) bool { return func(got string) bool { return got == want } }

func hasPrefix(p string) func(string) bool {
	return func(got string) bool { return len(got) >= len(p) && got[:len(p)] == p }
}

// cutLast splits s around the last sep.
func cutLast(s, sep string) (before, after string, found bool) {
	for i := len(s) - len(sep); i >= 0; i-- {
		if s[i:i+len(sep)] == sep {
			return s[:i], s[i+len(sep):], true
		}
	}
	return s, "", false
}

// closingServer is a backchannel server that closes its listener at once
// and serves nothing.
type closingServer struct{ closed chan error }

func (s *closingServer) Serve(lis net.Listener) error {
	err := lis.Close()
	if _, accErr := lis.Accept(); accErr == nil {
		err = errors.New("Accept after Close returned a connection")
	}
	s.closed <- err
	return nil
}

func (s *closingServer) Stop() {}

// TestStreamRouterCloseKeepsSession checks that closing the routed
// listener only stops Accept: the forward connection and the routed
// streams go on, as grpc.Server closes its listeners before its answers
// are flushed.
func TestStreamRouterCloseKeepsSession(t *testing.T) {
	srv := startServer(t, transports[0], func(reg *backchannel.Registry) testgrpc.TestServiceServer {
		return &streamOpenerService{registry: reg}
	})
	closing := &closingServer{closed: make(chan error, 1)}
	h := &lineHandshaker{}
	handshaker := backchannel.NewClientHandshaker(nil, func() backchannel.Server { return closing },
		backchannel.DefaultConfiguration(), backchannel.WithStreamHandshaker(h))
	cc := dial(t, srv.addr, grpc.WithTransportCredentials(handshaker.ClientHandshake(transports[0].client(t))))
	ctx := testContext(t)
	if _, err := testgrpc.NewTestServiceClient(cc).EmptyCall(ctx, &testgrpc.Empty{}); status.Code(err) != codes.Unimplemented {
		t.Fatalf("EmptyCall: %v, want UNIMPLEMENTED from the server (the connection works)", err)
	}
	if err := <-closing.closed; err != nil {
		t.Fatalf("closing the listener: %v", err)
	}
	// The routed stream still works; the reverse call beside it cannot
	// (nothing serves the backchannel), so UnaryCall fails after it.
	_, err := testgrpc.NewTestServiceClient(cc).UnaryCall(ctx, payloadRequest("hello-world ping\n"))
	if err == nil || !strings.Contains(err.Error(), "reverse call") {
		t.Fatalf("UnaryCall: %v, want the reverse call to fail", err)
	}
	if _, err := testgrpc.NewTestServiceClient(cc).EmptyCall(ctx, &testgrpc.Empty{}); status.Code(err) != codes.Unimplemented {
		t.Fatalf("EmptyCall after: %v, want the connection still working", err)
	}
	cc.Close()
	h.wg.Wait()
}
