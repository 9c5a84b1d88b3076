package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/proxy"
)

const unaryMethod = "/grpc.testing.TestService/UnaryCall"

// votingUpstream answers UnaryCall as Gitaly answers a mutator: it asks
// its caller to vote through the caller's backchannel first, then sets a
// header and a trailer. A plain caller cannot vote and is told so in the
// response.
type votingUpstream struct {
	testgrpc.UnimplementedTestServiceServer
	u *upstream
}

func (s *votingUpstream) UnaryCall(ctx context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	tx := md.Get("x-transaction")
	if len(tx) != 1 {
		return nil, status.Errorf(codes.InvalidArgument, "x-transaction: got %q, want one value", tx)
	}
	outcome := "plain"
	vote, err := s.u.callerBackchannel(ctx)
	switch {
	case errors.Is(err, backchannel.ErrNonMultiplexedConnection):
	case err != nil:
		return nil, err
	default:
		voteCtx := metadata.AppendToOutgoingContext(ctx, "x-vote", tx[0])
		resp, err := vote.UnaryCall(voteCtx, payload("vote on "+tx[0]))
		if err != nil {
			return nil, fmt.Errorf("vote: %w", err)
		}
		outcome = string(resp.GetPayload().GetBody())
	}
	grpc.SetHeader(ctx, metadata.Pairs("x-header", "h-"+tx[0]))
	grpc.SetTrailer(ctx, metadata.Pairs("x-trailer", "t-"+tx[0], "x-bin", "\x00\x01"))
	return payloadResponse(string(req.GetPayload().GetBody()) + " " + outcome), nil
}

// voter answers the upstream's vote from the client's backchannel.
type voter struct {
	testgrpc.UnimplementedTestServiceServer
	name string
}

func (v *voter) UnaryCall(ctx context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	return payloadResponse(fmt.Sprintf("%s committed (%s, x-vote %v)", v.name, req.GetPayload().GetBody(), md.Get("x-vote"))), nil
}

func payload(body string) *testgrpc.SimpleRequest {
	return &testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: []byte(body)}}
}

func payloadResponse(body string) *testgrpc.SimpleResponse {
	return &testgrpc.SimpleResponse{Payload: &testgrpc.Payload{Body: []byte(body)}}
}

func newVotingUpstream(t *testing.T, tr transport) *upstream {
	var vu votingUpstream
	u := startUpstream(t, tr, func(*backchannel.Registry) testgrpc.TestServiceServer { return &vu })
	vu.u = u
	return u
}

// TestVoteFlow relays Gitaly's vote: a client calls through the proxy, the
// upstream votes through the caller's backchannel, the client answers;
// everything arrives unchanged, and the vote is linked to its call.
func TestVoteFlow(t *testing.T) {
	for _, tr := range transports {
		for _, muxed := range []bool{true, false} {
			name := tr.name + "/plain"
			if muxed {
				name = tr.name + "/multiplexed"
			}
			t.Run(name, func(t *testing.T) {
				ctx := testContext(t)
				u := newVotingUpstream(t, tr)
				env := startProxy(t, tr, u.lis.Addr())
				var cc *grpc.ClientConn
				if muxed {
					cc = dialMux(t, tr, env.lis, &voter{name: "praefect"})
				} else {
					cc = dialPlain(t, tr, env.lis)
				}

				var header, trailer metadata.MD
				callCtx := metadata.AppendToOutgoingContext(ctx, "x-transaction", "42")
				resp, err := testgrpc.NewTestServiceClient(cc).UnaryCall(callCtx, payload("create branch"),
					grpc.Header(&header), grpc.Trailer(&trailer))
				if err != nil {
					t.Fatalf("UnaryCall through the proxy: %v", err)
				}
				want := "create branch plain"
				if muxed {
					want = "create branch praefect committed (vote on 42, x-vote [42])"
				}
				if got := string(resp.GetPayload().GetBody()); got != want {
					t.Errorf("response: got %q, want %q", got, want)
				}
				if got := header.Get("x-header"); len(got) != 1 || got[0] != "h-42" {
					t.Errorf("header x-header: got %q, want [h-42]", got)
				}
				if got := trailer.Get("x-trailer"); len(got) != 1 || got[0] != "t-42" {
					t.Errorf("trailer x-trailer: got %q, want [t-42]", got)
				}
				if got := trailer.Get("x-bin"); len(got) != 1 || got[0] != "\x00\x01" {
					t.Errorf("trailer x-bin: got %q, want [\"\\x00\\x01\"]", got)
				}

				fwd := env.rec.endedCall(t, unaryMethod, func(c *proxy.Call) bool { return c.Dir == calls.Forward })
				if fwd.Status.Code() != codes.OK || fwd.EndedBy != proxy.NoSide {
					t.Errorf("forward call: status %v, ended by %q; want OK, answered", fwd.Status, fwd.EndedBy)
				}
				if got := fwd.Metadata.Get("x-transaction"); len(got) != 1 || got[0] != "42" {
					t.Errorf("forward call metadata x-transaction: got %q", got)
				}
				wantKind := proxy.Plain
				if muxed {
					wantKind = proxy.Multiplexed
				}
				if fwd.Conn.Kind != wantKind {
					t.Errorf("connection kind: got %v, want %v", fwd.Conn.Kind, wantKind)
				}
				if fwd.RequestCount != 1 || fwd.ResponseCount != 1 || len(fwd.Requests) != 1 || len(fwd.Responses) != 1 {
					t.Errorf("forward call messages: %d/%d requests, %d/%d responses kept/counted; want 1 each",
						len(fwd.Requests), fwd.RequestCount, len(fwd.Responses), fwd.ResponseCount)
				}
				if fwd.OutStart.Before(fwd.Start) || fwd.End.Before(fwd.OutEnd) || fwd.Added() < 0 {
					t.Errorf("forward call timing: start %v, out %v-%v, end %v", fwd.Start, fwd.OutStart, fwd.OutEnd, fwd.End)
				}
				if !muxed {
					return
				}
				rev := env.rec.endedCall(t, unaryMethod, func(c *proxy.Call) bool { return c.Dir == calls.Reverse })
				if rev.Cause != fwd.ID {
					t.Errorf("reverse call cause: got %d, want the forward call %d", rev.Cause, fwd.ID)
				}
				if rev.Conn != fwd.Conn {
					t.Errorf("reverse call on connection %d, forward call on %d", rev.Conn.ID, fwd.Conn.ID)
				}
				if rev.Status.Code() != codes.OK {
					t.Errorf("reverse call status: %v", rev.Status)
				}
				if got := rev.Metadata.Get("x-vote"); len(got) != 1 || got[0] != "42" {
					t.Errorf("reverse call metadata x-vote: got %q", got)
				}
			})
		}
	}
}

// TestTwoClients: two multiplexed clients through one proxy each get only
// the reverse calls their own calls caused.
func TestTwoClients(t *testing.T) {
	tr := transports[0]
	ctx := testContext(t)
	u := newVotingUpstream(t, tr)
	env := startProxy(t, tr, u.lis.Addr())

	clients := map[string]testgrpc.TestServiceClient{}
	for _, name := range []string{"alice", "bob"} {
		clients[name] = testgrpc.NewTestServiceClient(dialMux(t, tr, env.lis, &voter{name: name}))
	}
	errs := make(chan error, 20)
	for i := range 10 {
		for name, c := range clients {
			go func() {
				tx := fmt.Sprintf("%s-%d", name, i)
				resp, err := c.UnaryCall(metadata.AppendToOutgoingContext(ctx, "x-transaction", tx), payload("call"))
				if err != nil {
					errs <- fmt.Errorf("%s: %w", tx, err)
					return
				}
				want := fmt.Sprintf("call %s committed (vote on %s, x-vote [%s])", name, tx, tx)
				if got := string(resp.GetPayload().GetBody()); got != want {
					errs <- fmt.Errorf("%s: got %q, want %q", tx, got, want)
					return
				}
				errs <- nil
			}()
		}
	}
	for range 20 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	ended := env.rec.endedCalls(t, 40)
	perConn := map[uint64][2]int{}
	for _, c := range ended {
		n := perConn[c.Conn.ID]
		n[c.Dir-1]++
		perConn[c.Conn.ID] = n
	}
	if len(perConn) != 2 {
		t.Fatalf("calls on %d connections, want 2: %v", len(perConn), perConn)
	}
	for id, n := range perConn {
		if n != [2]int{10, 10} {
			t.Errorf("connection %d: %d forward, %d reverse calls; want 10 each", id, n[0], n[1])
		}
	}
}
