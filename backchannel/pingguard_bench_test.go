package backchannel_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/listenmux"
	"google.golang.org/grpc"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
)

// BenchmarkPingGuard measures what the ping guard costs: the same calls as
// BenchmarkUnary and BenchmarkStream1MiB over a multiplexed connection
// without the guard ("unguarded", the base) and with it ("guarded", as the
// package ships), in the same interleaved batches:
//
//	go test -run '^$' -bench PingGuard -count 6 ./backchannel
//
// guarded/unguarded is the figure to read; 1.00 means the guard costs
// nothing.
func BenchmarkPingGuard(b *testing.B) {
	unary := func(ctx context.Context) func(testgrpc.TestServiceClient) error {
		req := &testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: make([]byte, 64)}}
		return func(c testgrpc.TestServiceClient) error {
			_, err := c.UnaryCall(ctx, req)
			return err
		}
	}
	// A stream of four 1 MiB messages into the called side.
	up := func(ctx context.Context) func(testgrpc.TestServiceClient) error {
		msg := &testgrpc.StreamingInputCallRequest{Payload: &testgrpc.Payload{Body: make([]byte, streamMessageSize)}}
		return func(c testgrpc.TestServiceClient) error {
			stream, err := c.StreamingInputCall(ctx)
			if err != nil {
				return err
			}
			for range 4 {
				if err := stream.Send(msg); err != nil {
					return err
				}
			}
			_, err = stream.CloseAndRecv()
			return err
		}
	}
	cases := []struct {
		name      string
		callers   int
		perCaller int
		unit      float64
		unitName  string
		op        func(context.Context) func(testgrpc.TestServiceClient) error
	}{
		{"unary/c1", 1, 128, 1, "calls/s", unary},
		{"unary/c64", 64, 2, 1, "calls/s", unary},
		{"stream1MiB-up/c1", 1, 4, 4 * streamMessageSize / 1e6, "MB/s", up},
	}
	for _, c := range cases {
		for _, dir := range []string{"forward", "reverse"} {
			b.Run(fmt.Sprintf("%s/%s", c.name, dir), func(b *testing.B) {
				unguarded, guarded := newGuardPair(b, false), newGuardPair(b, true)
				lanes := []lane{{name: "unguarded", client: unguarded.forward}, {name: "guarded", client: guarded.forward}}
				if dir == "reverse" {
					lanes = []lane{{name: "unguarded", client: unguarded.reverse}, {name: "guarded", client: guarded.reverse}}
				}
				interleave(b, lanes, c.callers, c.perCaller, c.unit, c.unitName, c.op(testContext(b)))
			})
		}
	}
}

// newGuardPair is newMuxedPair with the ping guard on both sides, or on
// neither.
func newGuardPair(b *testing.B, guarded bool) benchPair {
	lis := listen(b)
	registry := backchannel.NewRegistry()
	mux := listenmux.New(insecureCreds())
	var opts []backchannel.ServerHandshakerOption
	if !guarded {
		opts = append(opts, backchannel.ServerWithoutPingGuard())
	}
	mux.Register(backchannel.NewServerHandshaker(nil, registry, nil, opts...))
	srv := grpc.NewServer(grpc.Creds(mux))
	testgrpc.RegisterTestServiceServer(srv, &benchService{payload: make([]byte, streamMessageSize)})
	go srv.Serve(lis)
	b.Cleanup(srv.Stop)

	ctx := testContext(b)
	_, events := registry.Watch(ctx)
	handshaker := backchannel.NewClientHandshaker(nil, func() backchannel.Server {
		s := grpc.NewServer()
		testgrpc.RegisterTestServiceServer(s, &benchService{payload: make([]byte, streamMessageSize)})
		return s
	}, backchannel.DefaultConfiguration())
	if !guarded {
		handshaker = backchannel.WithoutPingGuard(handshaker)
	}
	cc := dial(b, lis.Addr().String(), grpc.WithTransportCredentials(handshaker.ClientHandshake(insecureCreds())))
	forward := testgrpc.NewTestServiceClient(cc)
	if _, err := forward.UnaryCall(ctx, &testgrpc.SimpleRequest{}); err != nil {
		b.Fatal(err)
	}
	ev := <-events
	reverse, err := registry.Backchannel(ev.Peer.ID)
	if err != nil {
		b.Fatal(err)
	}
	return benchPair{forward: forward, reverse: testgrpc.NewTestServiceClient(reverse)}
}
