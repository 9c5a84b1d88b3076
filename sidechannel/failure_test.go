package sidechannel_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/sidechannel"
)

// openOnly is a handler that opens the sidechannel and reports the error
// it got to errs.
func openOnly(errs chan<- error) handler {
	return func(ctx context.Context, _ string, _ *backchannel.Registry) (string, error) {
		sc, err := sidechannel.OpenSidechannel(ctx)
		if err == nil {
			sc.Close()
		}
		errs <- err
		return "", err
	}
}

// TestOpenFailures covers the calls whose sidechannel cannot open: the
// server's OpenSidechannel fails with an error that says why, the call
// fails, and nothing is left waiting on the client.
func TestOpenFailures(t *testing.T) {
	tests := []struct {
		name string
		// dial returns the client connection and the context to call
		// with; serverErrs has the result of each OpenSidechannel.
		dial     func(t *testing.T, ctx context.Context, tr transport, s *testServer, serverErrs <-chan error) (*grpc.ClientConn, context.Context)
		wantIs   error
		wantText string
	}{
		{
			name: "no ID in the metadata",
			dial: func(t *testing.T, ctx context.Context, tr transport, s *testServer, serverErrs <-chan error) (*grpc.ClientConn, context.Context) {
				cc, _ := dialSidechannel(t, tr, s)
				return cc, ctx
			},
			wantIs: sidechannel.ErrMissingID, wantText: "gitaly-sidechannel-id not found in incoming metadata",
		},
		{
			name: "plain connection",
			dial: func(t *testing.T, ctx context.Context, tr transport, s *testServer, serverErrs <-chan error) (*grpc.ClientConn, context.Context) {
				return dial(t, s.addr, grpc.WithTransportCredentials(tr.client(t))), withID(ctx, "0")
			},
			wantIs: backchannel.ErrNonMultiplexedConnection,
		},
		{
			name: "unknown ID",
			dial: func(t *testing.T, ctx context.Context, tr transport, s *testServer, serverErrs <-chan error) (*grpc.ClientConn, context.Context) {
				cc, _ := dialSidechannel(t, tr, s)
				return cc, withID(ctx, "12345")
			},
			wantIs: sidechannel.ErrNotAcknowledged, wantText: "it has no pending sidechannel with this ID",
		},
		{
			name: "an ID used before",
			dial: func(t *testing.T, ctx context.Context, tr transport, s *testServer, serverErrs <-chan error) (*grpc.ClientConn, context.Context) {
				cc, registry := dialSidechannel(t, tr, s)
				var got []byte
				first, waiter := sidechannel.RegisterSidechannel(ctx, registry, exchange(nil, &got))
				// The first call uses the ID (and fails: this handler
				// only opens); the test's call sends it again.
				call(first, cc, "")
				if err := waiter.Close(); errors.Is(err, sidechannel.ErrCallbackNotRun) {
					t.Fatalf("first use of the ID: %v, want the callback to have run", err)
				}
				<-serverErrs
				return cc, metadata.NewOutgoingContext(ctx, mustOutgoing(first))
			},
			wantIs: sidechannel.ErrNotAcknowledged, wantText: "it has no pending sidechannel with this ID",
		},
		{
			name: "client that does not route sidechannels",
			dial: func(t *testing.T, ctx context.Context, tr transport, s *testServer, serverErrs <-chan error) (*grpc.ClientConn, context.Context) {
				handshaker := backchannel.NewClientHandshaker(nil, reverseService, backchannel.DefaultConfiguration())
				return dial(t, s.addr, grpc.WithTransportCredentials(handshaker.ClientHandshake(tr.client(t)))), withID(ctx, "0")
			},
			wantIs: sidechannel.ErrNotAcknowledged, wantText: `got "\x00\x00", want "ok"`,
		},
	}
	forEachTransport(t, func(t *testing.T, tr transport) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				errs := make(chan error, 2)
				srv := startServer(t, tr, openOnly(errs))
				ctx := testContext(t)
				cc, callCtx := tt.dial(t, ctx, tr, srv, errs)
				_, err := call(callCtx, cc, "")
				if status.Code(err) != codes.Internal {
					t.Errorf("call: %v, want Internal", err)
				}
				got := <-errs
				if !errors.Is(got, tt.wantIs) || !strings.Contains(got.Error(), tt.wantText) {
					t.Errorf("OpenSidechannel: %v\nwant an error wrapping %q and saying %q", got, tt.wantIs, tt.wantText)
				}
			})
		}
	})
}

func withID(ctx context.Context, id string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, sidechannel.MetadataKey, id)
}

func mustOutgoing(ctx context.Context) metadata.MD {
	md, _ := metadata.FromOutgoingContext(ctx)
	return md
}
