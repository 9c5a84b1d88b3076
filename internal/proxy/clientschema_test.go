package proxy_test

import (
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/proxy"
)

// dialMuxServer connects to lis as a multiplexed client whose backchannel
// is served by what newServer makes.
func dialMuxServer(t testing.TB, tr transport, lis net.Listener, newServer func() *grpc.Server) *grpc.ClientConn {
	t.Helper()
	hs := backchannel.NewClientHandshaker(nil, func() backchannel.Server { return newServer() }, backchannel.DefaultConfiguration())
	return dialWith(t, lis, grpc.WithTransportCredentials(hs.ClientHandshake(tr.clientCreds(t))))
}

// TestClientSchemas: with no schema of the clients' backchannels, the
// reverse calls into a client are decoded by reflection over its
// backchannel, asked once per connection and never waited for by a call;
// a client that serves no reflection keeps its messages as bytes.
func TestClientSchemas(t *testing.T) {
	tr := transports[0]
	ctx := testContext(t)
	u := newVotingUpstream(t, tr)
	env := startProxy(t, tr, u.lis.Addr())
	schemas := proxy.NewClientSchemas(env.proxy, 10*time.Second)
	dec := &proxy.Decoder{Clients: schemas}

	// The reflecting client's reflection answers only once released.
	release := make(chan struct{})
	var releaseOnce sync.Once
	releaseAll := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(schemas.Close)
	t.Cleanup(releaseAll)
	var reflections atomic.Int32
	reflecting := testgrpc.NewTestServiceClient(dialMuxServer(t, tr, env.lis, func() *grpc.Server {
		srv := grpc.NewServer(grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if strings.HasPrefix(info.FullMethod, "/grpc.reflection.") {
				reflections.Add(1)
				select {
				case <-release:
				case <-ss.Context().Done():
					return ss.Context().Err()
				}
			}
			return h(srv, ss)
		}))
		testgrpc.RegisterTestServiceServer(srv, &voter{name: "a"})
		reflection.Register(srv)
		return srv
	}))
	vote := func(c testgrpc.TestServiceClient, tx string) *proxy.Call {
		t.Helper()
		callCtx := metadata.AppendToOutgoingContext(ctx, "x-transaction", tx)
		if _, err := c.UnaryCall(callCtx, payload("call "+tx)); err != nil {
			t.Fatalf("call %s: %v", tx, err)
		}
		return env.rec.endedCall(t, unaryMethod, func(c *proxy.Call) bool {
			return c.Dir == calls.Reverse && strings.Contains(string(c.Requests[0]), "vote on "+tx)
		})
	}

	// The first vote: learning starts when it is asked about, and the
	// client's calls go on meanwhile.
	first := vote(reflecting, "1")
	pending := dec.Pending(ctx, first)
	if pending == nil {
		t.Fatal("Pending: nil, want the client's schema being learnt")
	}
	second := vote(reflecting, "2")
	dec.Prefetch(second)
	select {
	case <-pending:
		t.Fatal("the schema is known before the client answered its reflection")
	default:
	}
	if got := string(dec.Entry(ctx, first).Requests[0]); !strings.Contains(got, `"@wire"`) {
		t.Errorf("entry before the schema is known: request %s, want it as bytes", got)
	}

	releaseAll()
	<-pending
	for _, c := range []*proxy.Call{first, second} {
		if p := dec.Pending(ctx, c); p != nil {
			<-p
		}
		e := dec.Entry(ctx, c)
		if got, want := string(e.Requests[0]), `{"payload":{"body":"dm90ZSBvbiA`; !strings.HasPrefix(got, want) {
			t.Errorf("vote #%d: request %s, want it decoded (%s...)", c.ID, got, want)
		}
		if got := string(e.Responses[0]); !strings.HasPrefix(got, `{"payload":{"body":`) {
			t.Errorf("vote #%d: response %s, want it decoded", c.ID, got)
		}
	}
	if n := reflections.Load(); n != 1 {
		t.Errorf("the client was asked by reflection %d times, want once for its connection", n)
	}

	// A client that serves no reflection: its votes stay bytes.
	silent := testgrpc.NewTestServiceClient(dialMux(t, tr, env.lis, &voter{name: "b"}))
	third := vote(silent, "3")
	if p := dec.Pending(ctx, third); p != nil {
		<-p
	}
	if got := string(dec.Entry(ctx, third).Requests[0]); !strings.Contains(got, `"@wire"`) {
		t.Errorf("vote into a client without reflection: request %s, want it as bytes", got)
	}
	cs, ok := schemas.Learnt(third.Conn)
	if !ok || !errors.Is(cs.Err(), dynamic.ErrReflectionNotSupported) {
		t.Errorf("the silent client's schema: learnt %v, error %v; want ErrReflectionNotSupported", ok, cs.Err())
	}

	// A forward call, and a decoder given a backchannel schema, ask no
	// client.
	fwd := env.rec.endedCall(t, unaryMethod, func(c *proxy.Call) bool { return c.Dir == calls.Forward })
	if p := dec.Pending(ctx, fwd); p != nil {
		t.Error("Pending of a forward call: want nil")
	}
	given := &proxy.Decoder{Reverse: mustEmptySource(t), Clients: schemas}
	if p := given.Pending(ctx, third); p != nil {
		t.Error("Pending with a backchannel schema given: want nil")
	}
}

func mustEmptySource(t testing.TB) dynamic.Source {
	t.Helper()
	src, err := dynamic.NewSourceFromFiles()
	if err != nil {
		t.Fatal(err)
	}
	return src
}
