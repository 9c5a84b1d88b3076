package sidechannel_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strconv"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/sidechannel"
)

// The exchange of the Gitaly capture: client body 00 01 02 03 04, server
// response 00 01 02 03.
var (
	gitalyBody     = []byte{0, 1, 2, 3, 4}
	gitalyResponse = []byte{0, 1, 2, 3}
	// gitalyFramed is the body as Gitaly's client frames it.
	gitalyFramed = "0009\x00\x01\x02\x03\x04" + "0000"
)

// gitalyClientHandshaker plays Gitaly's client for the sidechannel
// stream, byte by byte, and reports the ID it read and the response.
type gitalyClientHandshaker struct {
	result chan gitalyClientResult
}

type gitalyClientResult struct {
	id       []byte
	response []byte
	err      error
}

func (h *gitalyClientHandshaker) Magic() string { return "sidechannel" }

func (h *gitalyClientHandshaker) Handshake(conn net.Conn, _ credentials.AuthInfo) (net.Conn, credentials.AuthInfo, error) {
	go func() {
		defer conn.Close()
		res := gitalyClientResult{id: make([]byte, 8)}
		defer func() { h.result <- res }()
		if _, res.err = io.ReadFull(conn, res.id); res.err != nil {
			return
		}
		// Gitaly writes the acknowledgement, then each length and its
		// payload with separate writes.
		for _, part := range []string{"ok", "0009", string(gitalyBody), "0000"} {
			if _, res.err = io.WriteString(conn, part); res.err != nil {
				return
			}
		}
		res.response, res.err = io.ReadAll(conn)
	}()
	return nil, nil, credentials.ErrConnDispatched
}

// TestServerAgainstGitalyClient runs OpenSidechannel against a client that
// does exactly what Gitaly's does on the wire.
func TestServerAgainstGitalyClient(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		bodies := make(chan []byte, 1)
		srv := startServer(t, tr, func(ctx context.Context, _ string, _ *backchannel.Registry) (string, error) {
			sc, err := sidechannel.OpenSidechannel(ctx)
			if err != nil {
				return "", err
			}
			defer sc.Close()
			body, err := io.ReadAll(sc)
			bodies <- body
			if err != nil {
				return "", err
			}
			if _, err := sc.Write(gitalyResponse); err != nil {
				return "", err
			}
			return "", sc.Close()
		})
		h := &gitalyClientHandshaker{result: make(chan gitalyClientResult, 1)}
		handshaker := backchannel.NewClientHandshaker(nil, reverseService, backchannel.DefaultConfiguration(), backchannel.WithStreamHandshaker(h))
		cc := dial(t, srv.addr, grpc.WithTransportCredentials(handshaker.ClientHandshake(tr.client(t))))

		// Praefect appends its own ID after its caller's: the last wins.
		ctx := metadata.AppendToOutgoingContext(testContext(t), sidechannel.MetadataKey, "3", sidechannel.MetadataKey, "258")
		if _, err := call(ctx, cc, ""); err != nil {
			t.Fatalf("call: %v", err)
		}
		if got := <-bodies; !bytes.Equal(got, gitalyBody) {
			t.Errorf("server read body % x, want % x", got, gitalyBody)
		}
		res := <-h.result
		if res.err != nil {
			t.Fatalf("client: %v", res.err)
		}
		if want := []byte{0, 0, 0, 0, 0, 0, 1, 2}; !bytes.Equal(res.id, want) {
			t.Errorf("ID on the wire % x, want % x (258 as a big-endian int64)", res.id, want)
		}
		if !bytes.Equal(res.response, gitalyResponse) {
			t.Errorf("client read response % x, want % x", res.response, gitalyResponse)
		}
	})
}

// TestClientAgainstGitalyServer runs a registered sidechannel against a
// server handler that does exactly what Gitaly's does on the wire.
func TestClientAgainstGitalyServer(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		srv := startServer(t, tr, func(ctx context.Context, _ string, _ *backchannel.Registry) (string, error) {
			md, _ := metadata.FromIncomingContext(ctx)
			ids := md.Get(sidechannel.MetadataKey)
			if len(ids) != 1 {
				return "", fmt.Errorf("metadata %s = %q, want one value", sidechannel.MetadataKey, ids)
			}
			id, err := strconv.ParseInt(ids[0], 10, 64)
			if err != nil {
				return "", fmt.Errorf("metadata %s = %q, want a decimal number", sidechannel.MetadataKey, ids[0])
			}
			session, err := backchannel.GetYamuxSession(ctx)
			if err != nil {
				return "", err
			}
			stream, err := session.Open()
			if err != nil {
				return "", err
			}
			defer stream.Close()
			idBytes := binary.BigEndian.AppendUint64(nil, uint64(id))
			for _, part := range [][]byte{[]byte("sidechannel"), idBytes} {
				if _, err := stream.Write(part); err != nil {
					return "", err
				}
			}
			got := make([]byte, len("ok")+len(gitalyFramed))
			if _, err := io.ReadFull(stream, got); err != nil {
				return "", fmt.Errorf("read the acknowledgement and body: %w", err)
			}
			if want := "ok" + gitalyFramed; string(got) != want {
				return "", fmt.Errorf("client sent %q, want %q", got, want)
			}
			if _, err := stream.Write(gitalyResponse); err != nil {
				return "", err
			}
			return ids[0], stream.Close()
		})
		cc, registry := dialSidechannel(t, tr, srv)
		var got []byte
		ctx, waiter := sidechannel.RegisterSidechannel(testContext(t), registry, exchange(gitalyBody, &got))
		sentID, err := call(ctx, cc, "")
		if err != nil {
			t.Fatalf("call: %v", err)
		}
		if err := waiter.Close(); err != nil {
			t.Fatalf("callback: %v", err)
		}
		if want := strconv.FormatInt(waiter.ID(), 10); sentID != want {
			t.Errorf("the call sent ID %q, want %q", sentID, want)
		}
		if !bytes.Equal(got, gitalyResponse) {
			t.Errorf("client read % x, want % x", got, gitalyResponse)
		}
	})
}
