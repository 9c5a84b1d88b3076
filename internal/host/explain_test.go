package host

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/listenmux"
)

// testTLS returns a server certificate for 127.0.0.1 and a client
// configuration that trusts it.
func testTLS(t *testing.T) (tls.Certificate, *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "bcctl host test"},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// serveGRPC serves srv on a new listener and returns its address.
func serveGRPC(t *testing.T, srv *grpc.Server) string {
	return serveOn(t, srv.Serve, srv.Stop)
}

// serveHTTP1 serves plain HTTP/1 (as python3 -m http.server would).
func serveHTTP1(t *testing.T) string {
	srv := &http.Server{Handler: http.NotFoundHandler(), ReadHeaderTimeout: time.Minute}
	return serveOn(t, srv.Serve, func() { srv.Close() })
}

// serveOn runs serve on a new listener until the test ends, then stop, and
// returns the listener's address.
func serveOn(t *testing.T, serve func(net.Listener) error, stop func()) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = serve(lis)
	}()
	t.Cleanup(func() {
		stop()
		<-done
	})
	return lis.Addr().String()
}

// serveConns accepts connections and hands each to handle in its own
// goroutine; the connections are closed when the test ends.
func serveConns(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		lis.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return lis.Addr().String()
}

// dialTimes dials cfg n times at once and returns every error: the races
// between a server's answer and its hang-up come out in some of them.
func dialTimes(t *testing.T, n int, cfg Config) []error {
	t.Helper()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			c, err := Dial(ctxT(t), cfg)
			if err == nil {
				c.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	return errs
}

// TestDialExplainsFailures dials servers that cannot serve the dialer, many
// times each and at once (so the races between a server's answer and its
// hang-up show), and checks that each failure is reported by its real cause.
func TestDialExplainsFailures(t *testing.T) {
	cert, clientTLS := testTLS(t)
	serverTLS := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	mtls := serverTLS.Clone()
	mtls.ClientAuth = tls.RequireAnyClientCert

	plainGRPC := serveGRPC(t, grpc.NewServer())
	tlsGRPC := serveGRPC(t, grpc.NewServer(grpc.Creds(credentials.NewTLS(serverTLS))))
	muxServer := func(tc credentials.TransportCredentials) string {
		mux := listenmux.New(tc)
		mux.Register(backchannel.NewServerHandshaker(nil, backchannel.NewRegistry(), nil))
		return serveGRPC(t, grpc.NewServer(grpc.Creds(mux)))
	}
	plainMux := muxServer(insecure.NewCredentials())
	tlsMux := muxServer(credentials.NewTLS(serverTLS))
	mtlsMux := muxServer(credentials.NewTLS(mtls))
	http1 := serveHTTP1(t)
	hangUp := serveConns(t, func(c net.Conn) { c.Close() })

	plain := insecure.NewCredentials()
	tests := []struct {
		name    string
		cfg     Config
		want    error
		wantMsg string
	}{
		{"plain gRPC server, multiplexed", Config{Address: plainGRPC, Creds: plain}, ErrNotMultiplexing, "plain HTTP/2 gRPC server"},
		{"TLS gRPC server, multiplexed", Config{Address: tlsGRPC, TLS: clientTLS}, ErrNotMultiplexing, "plain HTTP/2 gRPC server"},
		{"TLS server, plain text multiplexed", Config{Address: tlsMux, Creds: plain}, ErrServerUsesTLS, "drop --plaintext"},
		{"TLS server, plain text", Config{Address: tlsGRPC, Creds: plain, NoMux: true}, ErrServerUsesTLS, "drop --plaintext"},
		{"plain-text mux server, TLS", Config{Address: plainMux, TLS: clientTLS}, ErrServerNotTLS, "use --plaintext"},
		{"plain-text gRPC server, TLS", Config{Address: plainGRPC, TLS: clientTLS, NoMux: true}, ErrServerNotTLS, "use --plaintext"},
		{"mTLS server, no client certificate", Config{Address: mtlsMux, TLS: clientTLS}, ErrClientCertRequired, "give one with --cert and --key"},
		{"mTLS server, no client certificate, TLS 1.2", Config{Address: mtlsMux, TLS: tls12(clientTLS)}, ErrClientCertRequired, "give one with --cert and --key"},
		{"mTLS server, no client certificate, no mux", Config{Address: mtlsMux, TLS: clientTLS, NoMux: true}, ErrClientCertRequired, "give one with --cert and --key"},
		{"HTTP/1 server, multiplexed", Config{Address: http1, Creds: plain}, ErrNotHTTP2, "it answers in HTTP/1"},
		{"HTTP/1 server", Config{Address: http1, Creds: plain, NoMux: true}, ErrNotHTTP2, "it answers in HTTP/1"},
		{"HTTP/1 server, TLS", Config{Address: http1, TLS: clientTLS}, ErrServerNotTLS, "use --plaintext"},
		{"a server that hangs up", Config{Address: hangUp, Creds: plain}, ErrConnect, "the server closed the connection without a word"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.ConnectTimeout = time.Minute
			for _, err := range dialTimes(t, 10, tt.cfg) {
				if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.wantMsg) {
					t.Fatalf("Dial = %v\nwant %q, saying %q", err, tt.want, tt.wantMsg)
				}
			}
		})
	}
}

func tls12(c *tls.Config) *tls.Config {
	c = c.Clone()
	c.MaxVersion = tls.VersionTLS12
	return c
}

// TestDialTimeoutNamesTheTimeout dials servers that accept and say nothing:
// the error is the connect timeout, never a hang-up, and it names how far
// the connection got. On a loaded machine the 200ms may pass before the
// dial itself returns (the kernel accepted it, the dialing goroutine had
// not run yet): that is named as such, and is the only other answer.
func TestDialTimeoutNamesTheTimeout(t *testing.T) {
	_, clientTLS := testTLS(t)
	silent := serveConns(t, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"multiplexed", Config{Address: silent, Creds: insecure.NewCredentials()}, "the server accepted the connection and sent nothing"},
		{"plain", Config{Address: silent, Creds: insecure.NewCredentials(), NoMux: true}, "the server accepted the connection and sent nothing"},
		{"TLS", Config{Address: silent, TLS: clientTLS}, "the TLS handshake did not finish"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.ConnectTimeout = 200 * time.Millisecond
			for _, err := range dialTimes(t, 5, tt.cfg) {
				const notDialed = "the server did not accept the connection"
				if !errors.Is(err, ErrConnectTimeout) ||
					!strings.Contains(err.Error(), "(--connect-timeout 200ms): "+tt.want) && !strings.HasSuffix(err.Error(), "(--connect-timeout 200ms): "+notDialed) {
					t.Fatalf("Dial = %v, want the connect timeout: %s (or, not dialed yet: %s)", err, tt.want, notDialed)
				}
			}
		})
	}
}

func TestReceivedAlert(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		want   tls.AlertError
		wantOK bool
	}{
		{"nil", nil, 0, false},
		{"EOF", io.EOF, 0, false},
		{"an AlertError", tls.AlertError(116), 116, true},
		{"not an alert in an OpError", &net.OpError{Op: "read", Err: errors.New("x")}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := receivedAlert(tt.err)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("receivedAlert(%v) = %v, %v; want %v, %v", tt.err, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
