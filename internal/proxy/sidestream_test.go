package proxy_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/internal/proxy"
	"github.com/bcctl/bcctl/listenmux"
)

const sideStreamSize = 3 << 20

// sideStreamUpstream answers UnaryCall as Gitaly answers a
// ...WithSidechannel call: it opens a stream on the caller's session,
// writes its magic and the caller's gitaly-sidechannel-id, waits for "ok",
// then sends sideStreamSize bytes while it reads as many, and closes the
// stream before it answers with the SHA-256 of what it received (payload)
// and of what it sent (hostname).
type sideStreamUpstream struct {
	testgrpc.UnimplementedTestServiceServer
	magic string
}

func (s *sideStreamUpstream) UnaryCall(ctx context.Context, _ *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	ids := md.Get("gitaly-sidechannel-id")
	if len(ids) == 0 {
		return nil, errors.New("no gitaly-sidechannel-id")
	}
	id, err := strconv.ParseInt(ids[len(ids)-1], 10, 64)
	if err != nil {
		return nil, err
	}
	session, err := backchannel.GetYamuxSession(ctx)
	if err != nil {
		return nil, err
	}
	stream, err := session.Open()
	if err != nil {
		return nil, err
	}
	defer stream.Close()
	head := binary.BigEndian.AppendUint64([]byte(s.magic), uint64(id))
	if _, err := stream.Write(head); err != nil {
		return nil, fmt.Errorf("write head: %w", err)
	}
	ok := make([]byte, 2)
	if _, err := io.ReadFull(stream, ok); err != nil || string(ok) != "ok" {
		return nil, fmt.Errorf("read ok: got %q, %v", ok, err)
	}
	sent := make(chan string, 1)
	go func() {
		h := sha256.New()
		_, err := io.CopyN(io.MultiWriter(stream, h), rand.Reader, sideStreamSize)
		if err != nil {
			sent <- "send: " + err.Error()
			return
		}
		sent <- hex.EncodeToString(h.Sum(nil))
	}()
	h := sha256.New()
	if _, err := io.CopyN(h, stream, sideStreamSize); err != nil {
		return nil, fmt.Errorf("receive: %w", err)
	}
	sentSum := <-sent
	stream.Close() // before the answer, as Gitaly does
	return &testgrpc.SimpleResponse{Payload: &testgrpc.Payload{Body: []byte(hex.EncodeToString(h.Sum(nil)))}, Hostname: sentSum}, nil
}

// sideStreamReceiver is the client's listenmux handshaker for side
// streams: it reads the ID, says "ok" and hands the stream to the waiter
// of that ID.
type sideStreamReceiver struct {
	magic string
	mu    sync.Mutex
	wait  map[int64]chan net.Conn
}

func (r *sideStreamReceiver) Magic() string { return r.magic }

func (r *sideStreamReceiver) Handshake(conn net.Conn, _ credentials.AuthInfo) (net.Conn, credentials.AuthInfo, error) {
	var id [8]byte
	if _, err := io.ReadFull(conn, id[:]); err != nil {
		return nil, nil, err
	}
	r.mu.Lock()
	ch, ok := r.wait[int64(binary.BigEndian.Uint64(id[:]))]
	r.mu.Unlock()
	if !ok {
		return nil, nil, errors.New("unknown side stream ID")
	}
	if _, err := conn.Write([]byte("ok")); err != nil {
		return nil, nil, err
	}
	ch <- conn
	return nil, nil, credentials.ErrConnDispatched
}

func (r *sideStreamReceiver) expect(id int64) chan net.Conn {
	ch := make(chan net.Conn, 1)
	r.mu.Lock()
	r.wait[id] = ch
	r.mu.Unlock()
	return ch
}

// TestSideStreams: a stream the upstream opens that is not gRPC reaches
// the client byte for byte, 3 MiB each way, each side's close passed on;
// the proxy names it and the call it belongs to.
func TestSideStreams(t *testing.T) {
	cases := []struct {
		name, magic, kind string
		tr                transport
	}{
		{"sidechannel/tcp", "sidechannel", "sidechannel", transports[0]},
		{"sidechannel/tls", "sidechannel", "sidechannel", transports[1]},
		{"sidechannel/unix", "sidechannel", "sidechannel", transports[2]},
		{"other", "otherstream", `"otherstream"`, transports[0]},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t)
			u := startUpstream(t, tc.tr, func(*backchannel.Registry) testgrpc.TestServiceServer {
				return &sideStreamUpstream{magic: tc.magic}
			})
			env := startProxy(t, tc.tr, u.lis.Addr())

			recv := &sideStreamReceiver{magic: tc.magic, wait: map[int64]chan net.Conn{}}
			hs := backchannel.NewClientHandshaker(nil, func() backchannel.Server {
				mux := listenmux.New(insecureCreds())
				mux.Register(recv)
				return grpc.NewServer(grpc.Creds(mux))
			}, backchannel.DefaultConfiguration())
			cc := dialWith(t, env.lis, grpc.WithTransportCredentials(hs.ClientHandshake(tc.tr.clientCreds(t))))

			const id = 7
			streams := recv.expect(id)
			type result struct {
				resp *testgrpc.SimpleResponse
				err  error
			}
			done := make(chan result, 1)
			go func() {
				// Praefect appends its own ID after its caller's; the last counts.
				callCtx := metadata.AppendToOutgoingContext(ctx, "gitaly-sidechannel-id", "99", "gitaly-sidechannel-id", strconv.Itoa(id))
				resp, err := testgrpc.NewTestServiceClient(cc).UnaryCall(callCtx, payload("fetch"))
				done <- result{resp, err}
			}()

			var stream net.Conn
			select {
			case stream = <-streams:
			case r := <-done:
				t.Fatalf("the call ended before the side stream arrived: %v", r.err)
			}
			sent := make(chan string, 1)
			go func() {
				h := sha256.New()
				if _, err := io.CopyN(io.MultiWriter(stream, h), rand.Reader, sideStreamSize); err != nil {
					sent <- err.Error()
					return
				}
				sent <- hex.EncodeToString(h.Sum(nil))
			}()
			h := sha256.New()
			n, err := io.Copy(h, stream) // until the upstream's close
			if err != nil || n != sideStreamSize {
				t.Fatalf("client received %d bytes (%v), want %d", n, err, sideStreamSize)
			}
			clientSent := <-sent
			stream.Close()

			r := <-done
			if r.err != nil {
				t.Fatalf("call: %v", r.err)
			}
			if got, want := string(r.resp.GetPayload().GetBody()), clientSent; got != want {
				t.Errorf("upstream received SHA-256 %s, client sent %s", got, want)
			}
			if got, want := hex.EncodeToString(h.Sum(nil)), r.resp.GetHostname(); got != want {
				t.Errorf("client received SHA-256 %s, upstream sent %s", got, want)
			}

			env.rec.waitFor(t, "the side stream", func() bool { return len(env.rec.streams) == 1 })
			s := env.rec.streams[0]
			fwd := env.rec.endedCall(t, unaryMethod, nil)
			if s.Kind != tc.kind || s.Cause != fwd.ID || s.Conn != fwd.Conn {
				t.Errorf("side stream: kind %s, cause %d on connection %d; want %s, cause %d on %d", s.Kind, s.Cause, s.Conn.ID, tc.kind, fwd.ID, fwd.Conn.ID)
			}
			headLen := int64(len(tc.magic) + 8)
			if s.ToClient != sideStreamSize+headLen || s.ToUpstream != sideStreamSize+2 {
				t.Errorf("side stream bytes: %d to the client, %d to the upstream; want %d and %d", s.ToClient, s.ToUpstream, sideStreamSize+headLen, sideStreamSize+2)
			}
			if s.ClosedFirst != proxy.SideUpstream || s.Err != nil {
				t.Errorf("side stream: closed first by %q (err %v); want the upstream", s.ClosedFirst, s.Err)
			}
			if wantID := tc.kind == "sidechannel"; s.HasChannelID != wantID || wantID && s.ChannelID != id {
				t.Errorf("side stream ID: %d (has %v); want %d: %v", s.ChannelID, s.HasChannelID, id, wantID)
			}
			if got := fwd.Conn.SideStreams.Load(); got != 1 {
				t.Errorf("connection counts %d side streams, want 1", got)
			}
		})
	}
}

func insecureCreds() credentials.TransportCredentials { return transports[0].clientCreds(nil) }
