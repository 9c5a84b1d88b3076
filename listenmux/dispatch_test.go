package listenmux_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/bcctl/bcctl/listenmux"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// dispatchingHandshaker takes its connections out of gRPC: it answers
// every line the client sends with "echo: LINE" until the client hangs up,
// long after Handshake has returned.
type dispatchingHandshaker struct {
	magic string
	wrap  bool          // return the sentinel wrapped, as a careless handshaker might
	done  chan struct{} // closed when the one connection's echo loop ends
}

func (h *dispatchingHandshaker) Magic() string { return h.magic }

func (h *dispatchingHandshaker) Handshake(conn net.Conn, _ credentials.AuthInfo) (net.Conn, credentials.AuthInfo, error) {
	go func() {
		defer close(h.done)
		defer conn.Close()
		lines := bufio.NewScanner(conn)
		for lines.Scan() {
			if _, err := fmt.Fprintf(conn, "echo: %s\n", lines.Text()); err != nil {
				return
			}
		}
	}()
	if h.wrap {
		return nil, nil, fmt.Errorf("handed over: %w", credentials.ErrConnDispatched)
	}
	return nil, nil, credentials.ErrConnDispatched
}

// TestDispatchedReturnsSentinel checks that the Mux hands the sentinel
// back by identity, as grpc-go compares it, whether or not the handshaker
// wrapped it.
func TestDispatchedReturnsSentinel(t *testing.T) {
	for _, wrap := range []bool{false, true} {
		t.Run(fmt.Sprintf("wrapped=%v", wrap), func(t *testing.T) {
			h := &dispatchingHandshaker{magic: "hello-world", wrap: wrap, done: make(chan struct{})}
			mux := listenmux.New(insecure.NewCredentials())
			mux.Register(h)
			lis := listen(t)
			result := serverHandshake(mux, lis)
			client := clientSends(t, transports(t)[0], lis, []byte("hello-world"))
			res := <-result
			if res.err != credentials.ErrConnDispatched { //nolint:errorlint // identity is what grpc-go checks
				t.Fatalf("ServerHandshake error = %v, want credentials.ErrConnDispatched itself", res.err)
			}
			echoOnce(t, client, "still mine")
			client.Close()
			<-h.done
		})
	}
}

// TestDispatchedUnderGRPC serves gRPC behind a Mux whose handshaker takes
// its connections over: gRPC leaves them open, the handshaker keeps
// talking on them after the handshake, and gRPC clients on the same
// listener are served as before, over TCP and TLS.
func TestDispatchedUnderGRPC(t *testing.T) {
	for _, tr := range transports(t) {
		t.Run(tr.name, func(t *testing.T) {
			h := &dispatchingHandshaker{magic: "hello-world", done: make(chan struct{})}
			mux := listenmux.New(tr.server)
			mux.Register(h)
			srv := grpc.NewServer(grpc.Creds(mux))
			healthpb.RegisterHealthServer(srv, health.NewServer())
			lis := listen(t)
			served := make(chan error, 1)
			go func() { served <- srv.Serve(lis) }()
			t.Cleanup(func() {
				srv.Stop()
				<-served
			})

			client := clientSends(t, tr, lis, []byte("hello-world"))
			for i := range 3 {
				echoOnce(t, client, fmt.Sprintf("line %d", i))
			}

			cc, err := grpc.NewClient("passthrough:///"+lis.Addr().String(), grpc.WithTransportCredentials(tr.client))
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if _, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
				t.Fatalf("a gRPC call beside the dispatched connection: %v", err)
			}

			// Stopping the server does not touch a connection it gave away.
			srv.Stop()
			echoOnce(t, client, "after Stop")
			client.Close()
			<-h.done
		})
	}
}

// echoOnce sends line and requires the dispatched handler's echo.
func echoOnce(t *testing.T, conn net.Conn, line string) {
	t.Helper()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := fmt.Fprintf(conn, "%s\n", line); err != nil {
		t.Fatalf("write %q: %v", line, err)
	}
	got, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatalf("read the echo of %q: %v (the connection was closed?)", line, err)
	}
	if want := "echo: " + line + "\n"; got != want {
		t.Fatalf("echo = %q, want %q", got, want)
	}
}
