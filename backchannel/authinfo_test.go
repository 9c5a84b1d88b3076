package backchannel_test

import (
	"context"
	"testing"

	"github.com/bcctl/bcctl/backchannel"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
)

// TestAuthInfo checks what a handler learns of a multiplexed caller: its
// ID, the wrapped credentials' AuthInfo (a TLS peer's state) through
// Unwrap, and the real security level through CheckSecurityLevel.
func TestAuthInfo(t *testing.T) {
	tests := []struct {
		transport    transport
		wantType     string
		privacyCheck bool // whether CheckSecurityLevel(PrivacyAndIntegrity) passes
	}{
		{transport: transports[0], wantType: "insecure", privacyCheck: false},
		{transport: transports[1], wantType: "tls", privacyCheck: true},
	}
	for _, tt := range tests {
		t.Run(tt.transport.name, func(t *testing.T) {
			seen := make(chan credentials.AuthInfo, 1)
			srv := startServer(t, tt.transport, func(*backchannel.Registry) testgrpc.TestServiceServer {
				return &authInfoService{seen: seen}
			})
			cc := dialMuxed(t, tt.transport, srv.addr, &namedService{})
			if _, err := testgrpc.NewTestServiceClient(cc).EmptyCall(testContext(t), &testgrpc.Empty{}); err != nil {
				t.Fatal(err)
			}

			info, ok := (<-seen).(backchannel.AuthInfo)
			if !ok {
				t.Fatalf("AuthInfo is not a backchannel.AuthInfo")
			}
			if info.ID != 1 {
				t.Errorf("ID = %d, want 1", info.ID)
			}
			if got := info.AuthType(); got != tt.wantType {
				t.Errorf("AuthType() = %q, want %q", got, tt.wantType)
			}
			err := credentials.CheckSecurityLevel(info, credentials.PrivacyAndIntegrity)
			if (err == nil) != tt.privacyCheck {
				t.Errorf("CheckSecurityLevel(PrivacyAndIntegrity) = %v, want pass=%v", err, tt.privacyCheck)
			}
			if tt.transport.name == "tls" {
				tlsInfo, ok := info.Unwrap().(credentials.TLSInfo)
				if !ok {
					t.Fatalf("Unwrap() = %T, want credentials.TLSInfo", info.Unwrap())
				}
				if !tlsInfo.State.HandshakeComplete {
					t.Errorf("TLS state of the wrapped AuthInfo is not a completed handshake")
				}
			}
		})
	}
}

type authInfoService struct {
	testgrpc.UnimplementedTestServiceServer
	seen chan<- credentials.AuthInfo
}

func (s *authInfoService) EmptyCall(ctx context.Context, _ *testgrpc.Empty) (*testgrpc.Empty, error) {
	p, _ := peer.FromContext(ctx)
	s.seen <- p.AuthInfo
	return &testgrpc.Empty{}, nil
}

// TestDialBackIsLazyAndSecure checks that the server opens no stream back
// to the client before the first reverse call, and that reverse calls carry
// per-RPC credentials that require transport security when the connection
// is TLS.
func TestDialBackIsLazyAndSecure(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		streams := make(chan int, 2)
		srv := startServer(t, tr, func(reg *backchannel.Registry) testgrpc.TestServiceServer {
			return &streamCountService{registry: reg, streams: streams, secure: tr.name == "tls"}
		})
		authority := make(chan string, 1)
		cc := dialMuxed(t, tr, srv.addr, &authorityService{seen: authority})
		client := testgrpc.NewTestServiceClient(cc)
		ctx := testContext(t)

		if _, err := client.EmptyCall(ctx, &testgrpc.Empty{}); err != nil {
			t.Fatal(err)
		}
		if got := <-streams; got != 1 {
			t.Errorf("yamux streams before any reverse call = %d, want 1 (the forward stream)", got)
		}
		if _, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{}); err != nil {
			t.Fatalf("reverse call: %v", err)
		}
		if got := <-streams; got != 2 {
			t.Errorf("yamux streams after a reverse call = %d, want 2", got)
		}
		if got, want := <-authority, "multiplexed%2F"; len(got) < len(want) || got[:len(want)] != want {
			t.Errorf("reverse call :authority = %q, want it to start with %q as Gitaly's", got, want)
		}
	})
}

// streamCountService reports the number of yamux streams of the caller's
// session; its UnaryCall makes a reverse call first.
type streamCountService struct {
	testgrpc.UnimplementedTestServiceServer
	registry *backchannel.Registry
	streams  chan<- int
	secure   bool
}

func (s *streamCountService) EmptyCall(ctx context.Context, _ *testgrpc.Empty) (*testgrpc.Empty, error) {
	session, err := backchannel.GetYamuxSession(ctx)
	if err != nil {
		return nil, err
	}
	s.streams <- session.NumStreams()
	return &testgrpc.Empty{}, nil
}

func (s *streamCountService) UnaryCall(ctx context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	conn, err := callerBackchannel(ctx, s.registry)
	if err != nil {
		return nil, err
	}
	var opts []grpc.CallOption
	if s.secure {
		opts = append(opts, grpc.PerRPCCredentials(secureOnlyCreds{}))
	}
	if _, err := testgrpc.NewTestServiceClient(conn).EmptyCall(ctx, &testgrpc.Empty{}, opts...); err != nil {
		return nil, err
	}
	session, err := backchannel.GetYamuxSession(ctx)
	if err != nil {
		return nil, err
	}
	s.streams <- session.NumStreams()
	return &testgrpc.SimpleResponse{}, nil
}

// secureOnlyCreds are per-RPC credentials that grpc-go only sends over a
// connection that reports privacy and integrity.
type secureOnlyCreds struct{}

func (secureOnlyCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer test"}, nil
}

func (secureOnlyCreds) RequireTransportSecurity() bool { return true }

// authorityService records the :authority of the reverse calls it answers.
type authorityService struct {
	testgrpc.UnimplementedTestServiceServer
	seen chan<- string
}

func (s *authorityService) EmptyCall(ctx context.Context, _ *testgrpc.Empty) (*testgrpc.Empty, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if a := md.Get(":authority"); len(a) > 0 {
		select {
		case s.seen <- a[0]:
		default:
		}
	}
	return &testgrpc.Empty{}, nil
}
