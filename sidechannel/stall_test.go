package sidechannel_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/sidechannel"
)

// silentHandshaker takes sidechannel streams and never acknowledges them;
// it closes them when the test ends.
type silentHandshaker struct {
	release chan struct{}
	wg      sync.WaitGroup
}

func (h *silentHandshaker) Magic() string { return "sidechannel" }

func (h *silentHandshaker) Handshake(conn net.Conn, _ credentials.AuthInfo) (net.Conn, credentials.AuthInfo, error) {
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		<-h.release
		conn.Close()
	}()
	return nil, nil, credentials.ErrConnDispatched
}

// TestClientNeverAcknowledges checks the server's HandshakeTimeout: a
// client that takes the stream and says nothing fails the open after five
// seconds, with an error that says so.
func TestClientNeverAcknowledges(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		t.Parallel()
		errs := make(chan error, 1)
		srv := startServer(t, tr, openOnly(errs))
		h := &silentHandshaker{release: make(chan struct{})}
		t.Cleanup(func() {
			close(h.release)
			h.wg.Wait()
		})
		handshaker := backchannel.NewClientHandshaker(nil, reverseService, backchannel.DefaultConfiguration(), backchannel.WithStreamHandshaker(h))
		cc := dial(t, srv.addr, grpc.WithTransportCredentials(handshaker.ClientHandshake(tr.client(t))))
		call(withID(testContext(t), "0"), cc, "")
		err := <-errs
		if !errors.Is(err, sidechannel.ErrNotAcknowledged) || !errors.Is(err, os.ErrDeadlineExceeded) && !strings.Contains(err.Error(), "no answer within 5s") {
			t.Errorf("OpenSidechannel: %v, want ErrNotAcknowledged after no answer within 5s", err)
		}
	})
}

// TestServerNeverOpens checks that a call whose server does not open the
// sidechannel leaves its waiter with ErrCallbackNotRun and the registry
// empty, and that the ID is refused afterwards.
func TestServerNeverOpens(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		srv := startServer(t, tr, func(context.Context, string, *backchannel.Registry) (string, error) { return "no sidechannel", nil })
		cc, registry := dialSidechannel(t, tr, srv)
		ran := false
		ctx, waiter := sidechannel.RegisterSidechannel(testContext(t), registry, func(*sidechannel.ClientConn) error {
			ran = true
			return nil
		})
		if got, err := call(ctx, cc, ""); err != nil || got != "no sidechannel" {
			t.Fatalf("call = %q, %v", got, err)
		}
		if err := waiter.Close(); !errors.Is(err, sidechannel.ErrCallbackNotRun) {
			t.Errorf("Waiter.Close: %v, want ErrCallbackNotRun", err)
		}
		if ran || registry.Waiting() != 0 {
			t.Errorf("callback ran: %v, waiting: %d; want false and 0", ran, registry.Waiting())
		}
	})
}

// stallCase is a sidechannel that stalls or breaks after the handshake.
type stallCase struct {
	name string
	// client is the callback; ctx is the call's context.
	client func(ctx context.Context) func(*sidechannel.ClientConn) error
	// server uses the open sidechannel and returns its error; stalled is
	// closed when it is about to block, so that the test cancels the
	// call only then.
	server func(sc *sidechannel.ServerConn, stalled chan<- struct{}) error
	// cancel: once the server has stalled, the test ends the call on the
	// server's side (its handler's context), as a deadline would.
	cancel   bool
	wantIs   error
	wantText string
}

var stallCases = []stallCase{
	{
		name: "client never reads",
		client: func(ctx context.Context) func(*sidechannel.ClientConn) error {
			return func(c *sidechannel.ClientConn) error {
				c.CloseWrite()
				<-ctx.Done()
				return nil
			}
		},
		server: func(sc *sidechannel.ServerConn, stalled chan<- struct{}) error {
			if _, err := io.ReadAll(sc); err != nil {
				return err
			}
			close(stalled)
			_, err := sc.Write(make([]byte, 8<<20))
			return err
		},
		cancel: true, wantIs: context.Canceled, wantText: "write response",
	},
	{
		name: "client never ends its body",
		client: func(ctx context.Context) func(*sidechannel.ClientConn) error {
			return func(c *sidechannel.ClientConn) error {
				c.Write([]byte("partial"))
				<-ctx.Done()
				return nil
			}
		},
		server: func(sc *sidechannel.ServerConn, stalled chan<- struct{}) error {
			if _, err := io.ReadFull(sc, make([]byte, len("partial"))); err != nil {
				return err
			}
			close(stalled)
			_, err := io.ReadAll(sc)
			return err
		},
		cancel: true, wantIs: context.Canceled, wantText: "the call ended",
	},
	{
		name: "client hangs up without the flush packet",
		client: func(context.Context) func(*sidechannel.ClientConn) error {
			return func(c *sidechannel.ClientConn) error {
				_, err := c.Write([]byte("partial"))
				return err
			}
		},
		server: func(sc *sidechannel.ServerConn, _ chan<- struct{}) error {
			_, err := io.ReadAll(sc)
			return err
		},
		wantIs: io.ErrUnexpectedEOF, wantText: "the body ended without its flush packet (0000)",
	},
	{
		name: "client hangs up while the server writes",
		client: func(context.Context) func(*sidechannel.ClientConn) error {
			return func(c *sidechannel.ClientConn) error {
				c.CloseWrite()
				_, err := io.ReadFull(c, make([]byte, 1))
				return err
			}
		},
		server: func(sc *sidechannel.ServerConn, _ chan<- struct{}) error {
			if _, err := io.ReadAll(sc); err != nil {
				return err
			}
			// More than the client's window: the client resets the
			// stream one second (ClientConfiguration) after its close.
			_, err := io.Copy(sc, bytes.NewReader(make([]byte, 8<<20)))
			return err
		},
		wantText: "write response",
	},
}

// TestStalls checks that a sidechannel that stalls or breaks after the
// handshake ends the server's Read or Write with an error that says why,
// frees the client's callback, and leaks nothing.
func TestStalls(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		for _, tc := range stallCases {
			t.Run(tc.name, func(t *testing.T) {
				serverErr := make(chan error, 1)
				stalled := make(chan struct{})
				endCall := make(chan context.CancelFunc, 1)
				srv := startServer(t, tr, func(ctx context.Context, _ string, _ *backchannel.Registry) (string, error) {
					ctx, cancel := context.WithCancel(ctx)
					defer cancel()
					endCall <- cancel
					sc, err := sidechannel.OpenSidechannel(ctx)
					if err != nil {
						serverErr <- err
						return "", err
					}
					defer sc.Close()
					err = tc.server(sc, stalled)
					serverErr <- err
					return "", err
				})
				cc, registry := dialSidechannel(t, tr, srv)
				ctx, cancel := context.WithCancel(testContext(t))
				defer cancel()
				ctx, waiter := sidechannel.RegisterSidechannel(ctx, registry, tc.client(ctx))
				called := make(chan error, 1)
				go func() {
					_, err := call(ctx, cc, "")
					called <- err
				}()
				if tc.cancel {
					<-stalled
					(<-endCall)()
				}
				err := <-serverErr
				if err == nil || tc.wantIs != nil && !errors.Is(err, tc.wantIs) || !strings.Contains(err.Error(), tc.wantText) {
					t.Errorf("server: %v\nwant an error wrapping %v and saying %q", err, tc.wantIs, tc.wantText)
				}
				if err := <-called; err == nil {
					t.Error("the call succeeded, want it to fail")
				}
				cancel()
				waiter.Close()
			})
		}
	})
}
