package sidechannel_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/listenmux"
	"github.com/bcctl/bcctl/sidechannel"
)

// echoHandler opens the call's sidechannel, sends back every byte of the
// body as it arrives, closes the sidechannel and answers with the SHA-256
// of what it read.
func echoHandler(ctx context.Context, _ string, _ *backchannel.Registry) (string, error) {
	sc, err := sidechannel.OpenSidechannel(ctx)
	if err != nil {
		return "", err
	}
	defer sc.Close()
	sum := sha256.New()
	if _, err := io.Copy(sc, io.TeeReader(sc, sum)); err != nil {
		return "", err
	}
	if err := sc.Close(); err != nil {
		return "", err
	}
	return hex.EncodeToString(sum.Sum(nil)), nil
}

// exchange returns a sidechannel callback that sends body while it reads
// the response into *got.
func exchange(body []byte, got *[]byte) func(*sidechannel.ClientConn) error {
	return func(c *sidechannel.ClientConn) error {
		written := make(chan error, 1)
		go func() {
			_, err := c.Write(body)
			if err == nil {
				err = c.CloseWrite()
			}
			written <- err
		}()
		resp, readErr := io.ReadAll(c)
		*got = resp
		return errors.Join(<-written, readErr)
	}
}

func sha(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRoundTrip sends bodies around the packet boundary and beyond the
// windows through the sidechannel and back: the server reads exactly what
// was sent and the client gets it back, SHA-256 for SHA-256.
func TestRoundTrip(t *testing.T) {
	sizes := []int{0, 1, sidechannel.MaxPacketPayload, sidechannel.MaxPacketPayload + 1, 8 << 20}
	forEachTransport(t, func(t *testing.T, tr transport) {
		srv := startServer(t, tr, echoHandler)
		cc, registry := dialSidechannel(t, tr, srv)
		for _, size := range sizes {
			t.Run(fmt.Sprint(size), func(t *testing.T) {
				body := randomBytes(t, size)
				var got []byte
				ctx, waiter := sidechannel.RegisterSidechannel(testContext(t), registry, exchange(body, &got))
				serverSum, err := call(ctx, cc, "")
				if err != nil {
					t.Fatalf("call: %v", err)
				}
				if err := waiter.Close(); err != nil {
					t.Fatalf("the sidechannel callback: %v", err)
				}
				if want := sha(body); serverSum != want {
					t.Errorf("the server read a body with SHA-256 %s, want %s", serverSum, want)
				}
				if len(got) != size || sha(got) != sha(body) {
					t.Errorf("the client read %d bytes with SHA-256 %s, want %d with %s", len(got), sha(got), size, sha(body))
				}
				if n := registry.Waiting(); n != 0 {
					t.Errorf("%d sidechannels still waiting after the call", n)
				}
			})
		}
	})
}

// TestReverseCallBesideSidechannel makes a reverse gRPC call on the
// caller's backchannel while the call's sidechannel is open on the same
// session.
func TestReverseCallBesideSidechannel(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		srv := startServer(t, tr, func(ctx context.Context, _ string, reg *backchannel.Registry) (string, error) {
			sc, err := sidechannel.OpenSidechannel(ctx)
			if err != nil {
				return "", err
			}
			defer sc.Close()
			body, err := io.ReadAll(sc)
			if err != nil {
				return "", err
			}
			reverse, err := reverseCall(ctx, reg, "vote")
			if err != nil {
				return "", err
			}
			if _, err := fmt.Fprintf(sc, "%s|%s", body, reverse); err != nil {
				return "", err
			}
			return "done", sc.Close()
		})
		cc, registry := dialSidechannel(t, tr, srv)
		var got []byte
		ctx, waiter := sidechannel.RegisterSidechannel(testContext(t), registry, exchange([]byte("body"), &got))
		if _, err := call(ctx, cc, ""); err != nil {
			t.Fatalf("call: %v", err)
		}
		if err := waiter.Close(); err != nil {
			t.Fatalf("the sidechannel callback: %v", err)
		}
		if want := "body|reverse:vote"; string(got) != want {
			t.Errorf("response %q, want %q", got, want)
		}
	})
}

// reverseCall calls the backchannel of the caller of ctx.
func reverseCall(ctx context.Context, reg *backchannel.Registry, req string) (string, error) {
	id, err := backchannel.GetPeerID(ctx)
	if err != nil {
		return "", err
	}
	conn, err := reg.Backchannel(id)
	if err != nil {
		return "", err
	}
	return call(ctx, conn, req)
}

// TestConcurrentCalls runs 50 calls at once on one connection, each with a
// sidechannel of its own: each gets back its own body.
func TestConcurrentCalls(t *testing.T) {
	const calls = 50
	forEachTransport(t, func(t *testing.T, tr transport) {
		srv := startServer(t, tr, echoHandler)
		cc, registry := dialSidechannel(t, tr, srv)
		ctx := testContext(t)
		var wg sync.WaitGroup
		errs := make(chan error, calls)
		for i := range calls {
			wg.Add(1)
			go func() {
				defer wg.Done()
				body := []byte(strings.Repeat(fmt.Sprintf("call %d;", i), 10000))
				var got []byte
				ctx, waiter := sidechannel.RegisterSidechannel(ctx, registry, exchange(body, &got))
				_, err := call(ctx, cc, "")
				if err := errors.Join(err, waiter.Close()); err != nil {
					errs <- fmt.Errorf("call %d: %w", i, err)
					return
				}
				if sha(got) != sha(body) {
					errs <- fmt.Errorf("call %d got %d bytes beginning %.20q, want its own %d bytes", i, len(got), got, len(body))
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}

// TestLastIDWins sends two IDs, as a proxy that appends its own does: the
// server opens the sidechannel of the last one.
func TestLastIDWins(t *testing.T) {
	tr := transports[0]
	srv := startServer(t, tr, echoHandler)
	cc, registry := dialSidechannel(t, tr, srv)
	decoy := registry.Register(func(*sidechannel.ClientConn) error { return errors.New("the decoy ran") })
	var got []byte
	ctx, waiter := sidechannel.RegisterSidechannel(testContext(t), registry, exchange([]byte("mine"), &got))
	ctx = metadata.NewOutgoingContext(ctx, metadata.Pairs(sidechannel.MetadataKey, fmt.Sprint(decoy.ID()), sidechannel.MetadataKey, fmt.Sprint(waiter.ID())))
	if _, err := call(ctx, cc, ""); err != nil {
		t.Fatalf("call: %v", err)
	}
	if err := waiter.Close(); err != nil || string(got) != "mine" {
		t.Errorf("the last ID's callback: %v, read %q; want no error and %q", err, got, "mine")
	}
	if err := decoy.Close(); !errors.Is(err, sidechannel.ErrCallbackNotRun) {
		t.Errorf("the first ID's waiter closed with %v, want ErrCallbackNotRun", err)
	}
}

// TestRoutedByGRPCCredentials routes sidechannels as Gitaly's client does:
// with no backchannel option, through a listenmux that is the backchannel
// gRPC server's transport credentials. The handshaker takes the stream out
// of gRPC (credentials.ErrConnDispatched), and reverse calls still work.
func TestRoutedByGRPCCredentials(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		srv := startServer(t, tr, func(ctx context.Context, req string, reg *backchannel.Registry) (string, error) {
			sum, err := echoHandler(ctx, req, reg)
			if err != nil {
				return "", err
			}
			reverse, err := reverseCall(ctx, reg, "vote")
			return sum + "|" + reverse, err
		})
		registry := sidechannel.NewRegistry()
		handshaker := backchannel.NewClientHandshaker(nil, func() backchannel.Server {
			mux := listenmux.New(insecure.NewCredentials())
			mux.Register(sidechannel.NewServerHandshaker(registry))
			return newReverseServer(grpc.Creds(mux))
		}, sidechannel.ClientConfiguration())
		cc := dial(t, srv.addr, grpc.WithTransportCredentials(handshaker.ClientHandshake(tr.client(t))))

		body := randomBytes(t, 1<<20)
		var got []byte
		ctx, waiter := sidechannel.RegisterSidechannel(testContext(t), registry, exchange(body, &got))
		resp, err := call(ctx, cc, "")
		if err != nil {
			t.Fatalf("call: %v", err)
		}
		if err := waiter.Close(); err != nil {
			t.Fatalf("the sidechannel callback: %v", err)
		}
		if want := sha(body) + "|reverse:vote"; resp != want || sha(got) != sha(body) {
			t.Errorf("response %q and %d bytes back; want %q and the body", resp, len(got), want)
		}
	})
}
