package listenmux_test

import (
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/bcctl/bcctl/listenmux"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// fallbackCall is what a recording Fallback was given.
type fallbackCall struct {
	magic    string
	authInfo credentials.AuthInfo
}

// recordingFallback records each call and answers with err, or with the
// connection it was given.
func recordingFallback(got chan<- fallbackCall, err error) listenmux.Fallback {
	return func(conn net.Conn, magic []byte, authInfo credentials.AuthInfo) (net.Conn, credentials.AuthInfo, error) {
		got <- fallbackCall{magic: string(magic), authInfo: authInfo}
		if err != nil {
			return nil, nil, err
		}
		return conn, authInfo, nil
	}
}

// TestFallback checks that the Fallback gets exactly the connections no
// handshaker takes, with the bytes read so far and the wrapped AuthInfo,
// and that the connection it returns still replays those bytes.
func TestFallback(t *testing.T) {
	for _, tr := range transports(t) {
		t.Run(tr.name, func(t *testing.T) {
			tests := []struct {
				name      string
				sends     string
				wantMagic string // empty: the handshaker, not the fallback, takes it
				wantRead  string
			}{
				{name: "http2 preface", sends: "PRI * HTTP/2.0\r\n\r\nSM", wantMagic: "PRI * HTTP/", wantRead: "PRI * HTTP/2.0\r\n\r\nSM"},
				{name: "garbage", sends: "GET / HTTP/1.1\r\n", wantMagic: "GET / HTTP/", wantRead: "GET / HTTP/1.1\r\n"},
				{name: "magic", sends: "hello-world!", wantRead: "!"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					got := make(chan fallbackCall, 1)
					mux := listenmux.New(tr.server)
					mux.Register(&echoHandshaker{magic: "hello-world", got: make(chan handshakeCall, 1)})
					mux.SetFallback(recordingFallback(got, nil))
					lis := listen(t)
					result := serverHandshake(mux, lis)
					client := clientSends(t, tr, lis, []byte(tt.sends))

					res := <-result
					if res.err != nil {
						t.Fatalf("ServerHandshake: %v", res.err)
					}
					defer res.conn.Close()
					select {
					case call := <-got:
						if call.magic != tt.wantMagic {
							t.Errorf("fallback got magic %q, want %q", call.magic, tt.wantMagic)
						}
						if got, want := call.authInfo.AuthType(), map[string]string{"tcp": "insecure", "tls": "tls"}[tr.name]; got != want {
							t.Errorf("fallback got AuthInfo of type %q, want %q", got, want)
						}
					default:
						if tt.wantMagic != "" {
							t.Fatal("the fallback was not called")
						}
					}
					client.Close()
					read, _ := io.ReadAll(res.conn)
					if string(read) != tt.wantRead {
						t.Errorf("server read %q, want %q", read, tt.wantRead)
					}
				})
			}
		})
	}
}

// TestFallbackRefuses checks that a Fallback's error refuses the
// connection: the error comes back wrapped with the bytes that were read,
// and the client sees the connection closed.
func TestFallbackRefuses(t *testing.T) {
	for _, tr := range transports(t) {
		t.Run(tr.name, func(t *testing.T) {
			notHTTP2 := errors.New("not HTTP/2")
			got := make(chan fallbackCall, 1)
			mux := listenmux.New(tr.server)
			mux.SetFallback(recordingFallback(got, notHTTP2))
			lis := listen(t)
			result := serverHandshake(mux, lis)
			client := clientSends(t, tr, lis, []byte("GET / HTTP/1.1\r\n"))

			res := <-result
			if !errors.Is(res.err, notHTTP2) || !strings.Contains(res.err.Error(), `listenmux: fallback for "GET / HTTP/"`) {
				t.Fatalf("ServerHandshake = %v, want the fallback's error wrapped with the bytes read", res.err)
			}
			<-got
			client.SetReadDeadline(time.Now().Add(30 * time.Second))
			if _, err := client.Read(make([]byte, 1)); err == nil {
				t.Error("client read after a refused connection succeeded, want the connection closed")
			}
		})
	}
}

// TestSetFallbackNilRestoresDefault checks that nil means ServeAsGRPC and
// that a clone keeps the Fallback.
func TestSetFallbackNilRestoresDefault(t *testing.T) {
	refuse := errors.New("refused")
	tests := []struct {
		name    string
		setup   func(*listenmux.Mux) *listenmux.Mux
		wantErr error
	}{
		{name: "nil restores the default", setup: func(m *listenmux.Mux) *listenmux.Mux {
			m.SetFallback(recordingFallback(make(chan fallbackCall, 1), refuse))
			m.SetFallback(nil)
			return m
		}},
		{name: "clone keeps the fallback", wantErr: refuse, setup: func(m *listenmux.Mux) *listenmux.Mux {
			m.SetFallback(recordingFallback(make(chan fallbackCall, 1), refuse))
			return m.Clone().(*listenmux.Mux)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mux := tt.setup(listenmux.New(insecure.NewCredentials()))
			lis := listen(t)
			result := serverHandshake(mux, lis)
			clientSends(t, transports(t)[0], lis, []byte("PRI * HTTP/2.0"))
			res := <-result
			if !errors.Is(res.err, tt.wantErr) {
				t.Fatalf("ServerHandshake error = %v, want %v", res.err, tt.wantErr)
			}
			if res.conn != nil {
				res.conn.Close()
			}
		})
	}
}
