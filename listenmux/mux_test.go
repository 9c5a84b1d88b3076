package listenmux_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/bcctl/bcctl/listenmux"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// transport pairs server and client credentials with a raw client dialer.
type transport struct {
	name   string
	server credentials.TransportCredentials
	client credentials.TransportCredentials
	// wrap runs the client side of the transport handshake on a raw conn.
	wrap func(net.Conn) (net.Conn, error)
}

func transports(t *testing.T) []transport {
	cert, pool := selfSigned(t)
	return []transport{
		{
			name:   "tcp",
			server: insecure.NewCredentials(),
			client: insecure.NewCredentials(),
			wrap:   func(c net.Conn) (net.Conn, error) { return c, nil },
		},
		{
			name:   "tls",
			server: credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}}),
			client: credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}),
			wrap: func(c net.Conn) (net.Conn, error) {
				tc := tls.Client(c, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", NextProtos: []string{"h2"}})
				return tc, tc.Handshake()
			},
		},
	}
}

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// echoHandshaker takes connections that start with its magic and records
// what it was given.
type echoHandshaker struct {
	magic string
	got   chan handshakeCall
	err   error
}

type handshakeCall struct {
	conn     net.Conn
	authInfo credentials.AuthInfo
}

func (h *echoHandshaker) Magic() string { return h.magic }

func (h *echoHandshaker) Handshake(conn net.Conn, authInfo credentials.AuthInfo) (net.Conn, credentials.AuthInfo, error) {
	if h.err != nil {
		return nil, nil, h.err
	}
	h.got <- handshakeCall{conn: conn, authInfo: authInfo}
	return conn, authInfo, nil
}

// serverHandshake accepts one connection on lis and runs mux on it.
func serverHandshake(mux *listenmux.Mux, lis net.Listener) <-chan handshakeResult {
	out := make(chan handshakeResult, 1)
	go func() {
		raw, err := lis.Accept()
		if err != nil {
			out <- handshakeResult{err: err}
			return
		}
		raw.SetDeadline(time.Now().Add(30 * time.Second))
		conn, info, err := mux.ServerHandshake(raw)
		if err != nil && err != credentials.ErrConnDispatched { //nolint:errorlint // as grpc-go does
			raw.Close()
		}
		out <- handshakeResult{conn: conn, authInfo: info, err: err}
	}()
	return out
}

type handshakeResult struct {
	conn     net.Conn
	authInfo credentials.AuthInfo
	err      error
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lis.Close() })
	return lis
}

// clientSends dials lis through tr, writes data and returns the conn.
func clientSends(t *testing.T, tr transport, lis net.Listener, data []byte) net.Conn {
	t.Helper()
	raw, err := net.Dial("tcp", lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tr.wrap(raw)
	if err != nil {
		raw.Close()
		t.Fatalf("client handshake: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := conn.Write(data); err != nil {
		t.Fatal(err)
	}
	return conn
}

// TestRouting checks where connections go: to the handshaker whose magic
// they start with, with the wrapped AuthInfo; anything else is returned
// with every byte replayed exactly.
func TestRouting(t *testing.T) {
	for _, tr := range transports(t) {
		t.Run(tr.name, func(t *testing.T) {
			tests := []struct {
				name       string
				sends      string
				handshaker bool
				wantRead   string
			}{
				{name: "magic", sends: "hello-world and more", handshaker: true, wantRead: " and more"},
				{name: "http2 preface", sends: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", wantRead: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"},
				{name: "near miss", sends: "hello-worlD!", wantRead: "hello-worlD!"},
				{name: "exactly eleven", sends: "0123456789a", wantRead: "0123456789a"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					h := &echoHandshaker{magic: "hello-world", got: make(chan handshakeCall, 1)}
					mux := listenmux.New(tr.server)
					mux.Register(h)
					lis := listen(t)
					result := serverHandshake(mux, lis)
					client := clientSends(t, tr, lis, []byte(tt.sends))

					res := <-result
					if res.err != nil {
						t.Fatalf("ServerHandshake: %v", res.err)
					}
					defer res.conn.Close()
					select {
					case call := <-h.got:
						if !tt.handshaker {
							t.Fatalf("handshaker got a connection that sent %q", tt.sends)
						}
						if got, want := call.authInfo.AuthType(), map[string]string{"tcp": "insecure", "tls": "tls"}[tr.name]; got != want {
							t.Errorf("handshaker got AuthInfo of type %q, want %q", got, want)
						}
					default:
						if tt.handshaker {
							t.Fatalf("handshaker did not get the connection")
						}
					}
					client.Close()
					got, err := io.ReadAll(res.conn)
					if err != nil && !errors.Is(err, io.EOF) {
						var opErr *net.OpError
						if !errors.As(err, &opErr) {
							t.Fatalf("read: %v", err)
						}
					}
					if string(got) != tt.wantRead {
						t.Errorf("server read %q, want %q", got, tt.wantRead)
					}
				})
			}
		})
	}
}

// TestShortClient checks that a client hanging up before the magic is
// complete gets an error that says so.
func TestShortClient(t *testing.T) {
	for _, tr := range transports(t) {
		t.Run(tr.name, func(t *testing.T) {
			mux := listenmux.New(tr.server)
			lis := listen(t)
			result := serverHandshake(mux, lis)
			client := clientSends(t, tr, lis, []byte("back"))
			client.Close()
			res := <-result
			if res.err == nil || !strings.Contains(res.err.Error(), "listenmux: read magic") || !errors.Is(res.err, io.ErrUnexpectedEOF) {
				t.Fatalf("ServerHandshake = %v, want a read magic error wrapping io.ErrUnexpectedEOF", res.err)
			}
		})
	}
}

// TestHandshakerError checks that a failing handshaker's error is wrapped
// with the magic and the connection is closed.
func TestHandshakerError(t *testing.T) {
	boom := errors.New("boom")
	mux := listenmux.New(insecure.NewCredentials())
	mux.Register(&echoHandshaker{magic: "hello-world", err: boom})
	lis := listen(t)
	result := serverHandshake(mux, lis)
	client := clientSends(t, transports(t)[0], lis, []byte("hello-world"))

	res := <-result
	if !errors.Is(res.err, boom) || !strings.Contains(res.err.Error(), `"hello-world" handshake`) {
		t.Fatalf("ServerHandshake = %v, want boom wrapped with the magic", res.err)
	}
	client.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := client.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("client read after a failed handshake = %v, want EOF (closed)", err)
	}
}

func TestRegisterRefusesBadMagic(t *testing.T) {
	tests := []struct {
		magic string
		want  string
	}{
		{magic: "short", want: `magic "short" is 5 bytes; it must be exactly 11`},
		{magic: "much too long magic", want: "is 19 bytes; it must be exactly 11"},
		{magic: "", want: "is 0 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.magic, func(t *testing.T) {
			got := panicMessage(func() { listenmux.New(insecure.NewCredentials()).Register(&echoHandshaker{magic: tt.magic}) })
			if !strings.Contains(got, tt.want) {
				t.Errorf("Register(%q) panicked with %q, want it to contain %q", tt.magic, got, tt.want)
			}
		})
	}

	t.Run("duplicate", func(t *testing.T) {
		mux := listenmux.New(insecure.NewCredentials())
		mux.Register(&echoHandshaker{magic: "hello-world"})
		got := panicMessage(func() { mux.Register(&echoHandshaker{magic: "hello-world"}) })
		if !strings.Contains(got, `magic "hello-world" is already registered`) {
			t.Errorf("duplicate Register panicked with %q", got)
		}
	})
}

func panicMessage(f func()) (msg string) {
	defer func() {
		if r := recover(); r != nil {
			msg, _ = r.(string)
		}
	}()
	f()
	return ""
}

// TestCloneKeepsHandshakers checks that a clone routes like the original.
func TestCloneKeepsHandshakers(t *testing.T) {
	h := &echoHandshaker{magic: "hello-world", got: make(chan handshakeCall, 1)}
	mux := listenmux.New(insecure.NewCredentials())
	mux.Register(h)
	clone, ok := mux.Clone().(*listenmux.Mux)
	if !ok {
		t.Fatalf("Clone() is %T, want *listenmux.Mux", mux.Clone())
	}

	lis := listen(t)
	result := serverHandshake(clone, lis)
	clientSends(t, transports(t)[0], lis, []byte("hello-world"))
	res := <-result
	if res.err != nil {
		t.Fatal(res.err)
	}
	defer res.conn.Close()
	select {
	case <-h.got:
	default:
		t.Fatal("the clone did not route the connection to the registered handshaker")
	}
}

// TestPlainGRPCThroughMux serves gRPC behind a Mux with a handshaker
// registered: ordinary clients over TCP and TLS are unaffected.
func TestPlainGRPCThroughMux(t *testing.T) {
	for _, tr := range transports(t) {
		t.Run(tr.name, func(t *testing.T) {
			mux := listenmux.New(tr.server)
			mux.Register(&echoHandshaker{magic: "hello-world", got: make(chan handshakeCall, 1)})
			srv := grpc.NewServer(grpc.Creds(mux))
			healthpb.RegisterHealthServer(srv, health.NewServer())
			lis := listen(t)
			go srv.Serve(lis)
			defer srv.Stop()

			cc, err := grpc.NewClient("passthrough:///"+lis.Addr().String(), grpc.WithTransportCredentials(tr.client))
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			for range 10 {
				resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
					t.Fatalf("status %v", resp.GetStatus())
				}
			}
			// A big message crosses the replayed connection intact.
			big := bytes.Repeat([]byte("x"), 1<<20)
			_, err = healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: string(big)})
			if err == nil || !strings.Contains(err.Error(), "unknown service") {
				t.Fatalf("Check(1 MiB service name) = %v, want NotFound", err)
			}
		})
	}
}
