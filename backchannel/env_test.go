package backchannel_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/listenmux"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
)

// transport is one way of securing the connections under test.
type transport struct {
	name   string
	server func(t testing.TB) credentials.TransportCredentials
	client func(t testing.TB) credentials.TransportCredentials
}

// transports lists the transports every behavioural test runs over.
var transports = []transport{
	{
		name:   "tcp",
		server: func(testing.TB) credentials.TransportCredentials { return insecure.NewCredentials() },
		client: func(testing.TB) credentials.TransportCredentials { return insecure.NewCredentials() },
	},
	{
		name: "tls",
		server: func(t testing.TB) credentials.TransportCredentials {
			return credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{testCert(t).cert}})
		},
		client: func(t testing.TB) credentials.TransportCredentials {
			return credentials.NewTLS(&tls.Config{RootCAs: testCert(t).pool, ServerName: "127.0.0.1"})
		},
	},
}

// forEachTransport runs fn as a subtest per transport.
func forEachTransport(t *testing.T, fn func(t *testing.T, tr transport)) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) { fn(t, tr) })
	}
}

type certPair struct {
	cert tls.Certificate
	pool *x509.CertPool
}

var (
	certOnce sync.Once
	certVal  certPair
	certErr  error
)

// testCert returns a self-signed certificate for 127.0.0.1 and ::1.
func testCert(t testing.TB) certPair {
	certOnce.Do(func() { certVal, certErr = newCert() })
	if certErr != nil {
		t.Fatalf("generate certificate: %v", certErr)
	}
	return certVal
}

func newCert() (certPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return certPair{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "bcctl test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return certPair{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return certPair{}, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return certPair{cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool: pool}, nil
}

// testServer is a gRPC server behind a listenmux with the backchannel
// handshaker, listening on 127.0.0.1.
type testServer struct {
	addr     string
	registry *backchannel.Registry
	server   *grpc.Server
}

// startServer starts a server whose TestService is newService(registry).
// opts are added to the grpc.Server's options.
func startServer(t testing.TB, tr transport, newService func(*backchannel.Registry) testgrpc.TestServiceServer, opts ...grpc.ServerOption) *testServer {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	registry := backchannel.NewRegistry()
	mux := listenmux.New(tr.server(t))
	mux.Register(backchannel.NewServerHandshaker(nil, registry, nil))

	srv := grpc.NewServer(append([]grpc.ServerOption{grpc.Creds(mux)}, opts...)...)
	testgrpc.RegisterTestServiceServer(srv, newService(registry))
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-served
	})
	return &testServer{addr: lis.Addr().String(), registry: registry, server: srv}
}

// dialMuxed dials s with the backchannel handshake; backchannelSvc answers
// the reverse calls on this connection.
func dialMuxed(t testing.TB, tr transport, addr string, backchannelSvc testgrpc.TestServiceServer) *grpc.ClientConn {
	t.Helper()
	handshaker := backchannel.NewClientHandshaker(nil, func() backchannel.Server {
		srv := grpc.NewServer()
		testgrpc.RegisterTestServiceServer(srv, backchannelSvc)
		return srv
	}, backchannel.DefaultConfiguration())
	return dial(t, addr, grpc.WithTransportCredentials(handshaker.ClientHandshake(tr.client(t))))
}

// dialPlain dials s as a client that knows nothing of multiplexing.
func dialPlain(t testing.TB, tr transport, addr string) *grpc.ClientConn {
	t.Helper()
	return dial(t, addr, grpc.WithTransportCredentials(tr.client(t)))
}

func dial(t testing.TB, addr string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr, opts...)
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// testContext returns a context that ends with the test or after a minute.
func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// reverseService answers forward UnaryCalls by making a reverse UnaryCall
// on the caller's backchannel and returning its payload; plain callers get
// the GetPeerID error as payload.
type reverseService struct {
	testgrpc.UnimplementedTestServiceServer
	registry *backchannel.Registry
}

// newReverseService is a startServer service factory.
func newReverseService(reg *backchannel.Registry) testgrpc.TestServiceServer {
	return &reverseService{registry: reg}
}

func (s *reverseService) UnaryCall(ctx context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	conn, err := callerBackchannel(ctx, s.registry)
	if errors.Is(err, backchannel.ErrNonMultiplexedConnection) {
		return payloadResponse("plain: " + err.Error()), nil
	} else if err != nil {
		return nil, err
	}
	return testgrpc.NewTestServiceClient(conn).UnaryCall(ctx, req)
}

// namedService answers every UnaryCall with its name and the request's
// payload, so a test can tell which client's backchannel answered.
type namedService struct {
	testgrpc.UnimplementedTestServiceServer
	name string
}

func (s *namedService) UnaryCall(_ context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	return payloadResponse(fmt.Sprintf("%s:%s", s.name, req.GetPayload().GetBody())), nil
}

func payloadResponse(body string) *testgrpc.SimpleResponse {
	return &testgrpc.SimpleResponse{Payload: &testgrpc.Payload{Body: []byte(body)}}
}

func payloadRequest(body string) *testgrpc.SimpleRequest {
	return &testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: []byte(body)}}
}

// listen returns a TCP listener on 127.0.0.1 that is closed with the test.
func listen(t testing.TB) net.Listener {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() { lis.Close() })
	return lis
}

// newMux returns a listenmux with the backchannel handshaker for registry.
func newMux(creds credentials.TransportCredentials, registry *backchannel.Registry) *listenmux.Mux {
	mux := listenmux.New(creds)
	mux.Register(backchannel.NewServerHandshaker(nil, registry, nil))
	return mux
}

func insecureCreds() credentials.TransportCredentials { return insecure.NewCredentials() }

// callerBackchannel returns the backchannel of the peer whose call ctx
// belongs to.
func callerBackchannel(ctx context.Context, reg *backchannel.Registry) (*grpc.ClientConn, error) {
	id, err := backchannel.GetPeerID(ctx)
	if err != nil {
		return nil, err
	}
	return reg.Backchannel(id)
}
