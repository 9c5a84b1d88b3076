package sidechannel_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/listenmux"
	"github.com/bcctl/bcctl/sidechannel"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// callMethod is the one method of the test server; it takes and returns a
// StringValue.
const callMethod = "/sidechannel.test.Test/Call"

// transport is one way of securing the connections under test.
type transport struct {
	name   string
	server func(t testing.TB) credentials.TransportCredentials
	client func(t testing.TB) credentials.TransportCredentials
}

var transports = []transport{
	{
		name:   "tcp",
		server: func(testing.TB) credentials.TransportCredentials { return insecure.NewCredentials() },
		client: func(testing.TB) credentials.TransportCredentials { return insecure.NewCredentials() },
	},
	{
		name: "tls",
		server: func(testing.TB) credentials.TransportCredentials {
			return credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{testCert().cert}})
		},
		client: func(testing.TB) credentials.TransportCredentials {
			return credentials.NewTLS(&tls.Config{RootCAs: testCert().pool, ServerName: "127.0.0.1"})
		},
	},
}

func forEachTransport(t *testing.T, fn func(t *testing.T, tr transport)) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) { fn(t, tr) })
	}
}

type certPair struct {
	cert tls.Certificate
	pool *x509.CertPool
}

var testCert = sync.OnceValue(func() certPair {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return certPair{cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool: pool}
})

// handler answers one call of the test server: it gets the call's context,
// the request's value and the server's backchannel registry, and returns
// the response's value.
type handler func(ctx context.Context, req string, reg *backchannel.Registry) (string, error)

// testServer is a Gitaly-like server: a listenmux with the backchannel
// handshaker, serving callMethod with a handler, on 127.0.0.1.
type testServer struct {
	addr     string
	registry *backchannel.Registry
}

// startServer serves h until the test ends. A handler error becomes the
// call's status (Internal).
func startServer(t testing.TB, tr transport, h handler) *testServer {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	registry := backchannel.NewRegistry()
	mux := listenmux.New(tr.server(t))
	mux.Register(backchannel.NewServerHandshaker(nil, registry, nil))
	srv := grpc.NewServer(grpc.Creds(mux), grpc.UnknownServiceHandler(func(_ any, stream grpc.ServerStream) error {
		req := new(wrapperspb.StringValue)
		if err := stream.RecvMsg(req); err != nil {
			return err
		}
		resp, err := h(stream.Context(), req.GetValue(), registry)
		if err != nil {
			return status.Error(codes.Internal, err.Error())
		}
		return stream.SendMsg(wrapperspb.String(resp))
	}))
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-served
	})
	return &testServer{addr: lis.Addr().String(), registry: registry}
}

// reverseService is a backchannel.ServerFactory for newReverseServer.
func reverseService() backchannel.Server { return newReverseServer() }

// newReverseServer answers every reverse call with "reverse:" and the
// request.
func newReverseServer(opts ...grpc.ServerOption) *grpc.Server {
	return grpc.NewServer(append(opts, grpc.UnknownServiceHandler(func(_ any, stream grpc.ServerStream) error {
		req := new(wrapperspb.StringValue)
		if err := stream.RecvMsg(req); err != nil {
			return err
		}
		return stream.SendMsg(wrapperspb.String("reverse:" + req.GetValue()))
	}))...)
}

// dialSidechannel dials s as a sidechannel client with its own Registry,
// answering reverse calls with reverseService.
func dialSidechannel(t testing.TB, tr transport, s *testServer) (*grpc.ClientConn, *sidechannel.Registry) {
	t.Helper()
	registry := sidechannel.NewRegistry()
	handshaker := sidechannel.NewClientHandshaker(nil, registry, reverseService, sidechannel.ClientConfiguration())
	return dial(t, s.addr, grpc.WithTransportCredentials(handshaker.ClientHandshake(tr.client(t)))), registry
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

// call invokes callMethod with req and returns the response's value.
func call(ctx context.Context, cc *grpc.ClientConn, req string) (string, error) {
	resp := new(wrapperspb.StringValue)
	err := cc.Invoke(ctx, callMethod, wrapperspb.String(req), resp)
	return resp.GetValue(), err
}

// testContext returns a context that ends with the test or after a minute.
func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}
