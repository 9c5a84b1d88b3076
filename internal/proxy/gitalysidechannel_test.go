package proxy_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"testing"

	"google.golang.org/grpc"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/sidechannel"
)

// sidechannelUpstream answers UnaryCall as Gitaly answers
// PostUploadPackWithSidechannel, with package sidechannel: it opens the
// call's sidechannel, reads the client's body to its end while it sends
// sideStreamSize bytes of response, closes the sidechannel and answers
// with the SHA-256 of the body (payload) and of the response (hostname).
type sidechannelUpstream struct {
	testgrpc.UnimplementedTestServiceServer
}

func (sidechannelUpstream) UnaryCall(ctx context.Context, _ *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	conn, err := sidechannel.OpenSidechannel(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	sent := make(chan string, 1)
	go func() {
		h := sha256.New()
		if _, err := io.CopyN(io.MultiWriter(conn, h), rand.Reader, sideStreamSize); err != nil {
			sent <- "send: " + err.Error()
			return
		}
		sent <- hex.EncodeToString(h.Sum(nil))
	}()
	h := sha256.New()
	if _, err := io.Copy(h, conn); err != nil {
		return nil, fmt.Errorf("receive the body: %w", err)
	}
	sentSum := <-sent
	if err := conn.Close(); err != nil {
		return nil, err
	}
	return &testgrpc.SimpleResponse{Payload: &testgrpc.Payload{Body: []byte(hex.EncodeToString(h.Sum(nil)))}, Hostname: sentSum}, nil
}

// TestGitalySidechannel: a clone-shaped call with Gitaly's sidechannel,
// both ends built with package sidechannel, works through the proxy: the
// packets of the body and the raw response pass unchanged, 3 MiB each way.
func TestGitalySidechannel(t *testing.T) {
	tr := transports[1] // TLS, as between Praefect and Gitaly
	ctx := testContext(t)
	u := startUpstream(t, tr, func(*backchannel.Registry) testgrpc.TestServiceServer { return sidechannelUpstream{} })
	env := startProxy(t, tr, u.lis.Addr())

	registry := sidechannel.NewRegistry()
	hs := sidechannel.NewClientHandshaker(nil, registry, nil, sidechannel.ClientConfiguration())
	cc := dialWith(t, env.lis, grpc.WithTransportCredentials(hs.ClientHandshake(tr.clientCreds(t))))

	var bodySum, responseSum string
	callCtx, waiter := sidechannel.RegisterSidechannel(ctx, registry, func(conn *sidechannel.ClientConn) error {
		sent := make(chan error, 1)
		go func() {
			h := sha256.New()
			_, err := io.CopyN(io.MultiWriter(conn, h), rand.Reader, sideStreamSize)
			if err == nil {
				err = conn.CloseWrite()
			}
			bodySum = hex.EncodeToString(h.Sum(nil))
			sent <- err
		}()
		h := sha256.New()
		if _, err := io.Copy(h, conn); err != nil {
			return err
		}
		responseSum = hex.EncodeToString(h.Sum(nil))
		return <-sent
	})
	resp, err := testgrpc.NewTestServiceClient(cc).UnaryCall(callCtx, payload("clone"))
	if err != nil {
		t.Fatalf("call: %v", err)
	}
	if err := waiter.Close(); err != nil {
		t.Fatalf("sidechannel: %v", err)
	}
	if got := string(resp.GetPayload().GetBody()); got != bodySum {
		t.Errorf("the upstream received SHA-256 %s, the client sent %s", got, bodySum)
	}
	if got := resp.GetHostname(); got != responseSum {
		t.Errorf("the client received SHA-256 %s, the upstream sent %s", responseSum, got)
	}
	env.rec.waitFor(t, "the side stream", func() bool { return len(env.rec.streams) == 1 })
	if s := env.rec.streams[0]; s.Kind != "sidechannel" || s.ToClient < sideStreamSize || s.ToUpstream < sideStreamSize || s.Err != nil {
		t.Errorf("side stream: kind %q, %d bytes to the client, %d to the upstream, err %v", s.Kind, s.ToClient, s.ToUpstream, s.Err)
	}
}
