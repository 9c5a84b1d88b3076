package backchannel_test

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/bcctl/bcctl/backchannel"
)

// FuzzServerHandshake feeds arbitrary bytes, as a client would send them
// after connecting, to a listenmux with the backchannel handshaker. Whatever
// arrives, the handshake returns within its deadline, nothing panics, and
// once the connection is closed the registry is empty again.
func FuzzServerHandshake(f *testing.F) {
	syn := func(stream uint32) []byte {
		var hdr [12]byte
		hdr[1] = 1 // window update
		binary.BigEndian.PutUint16(hdr[2:], 1)
		binary.BigEndian.PutUint32(hdr[4:], stream)
		return hdr[:]
	}
	f.Add([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
	f.Add([]byte("backc"))
	f.Add([]byte("backchannel"))
	f.Add(append([]byte("backchannel"), syn(1)...))
	f.Add(append(append([]byte("backchannel"), syn(1)...), "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"...))
	f.Add(append(append([]byte("backchannel"), syn(1)...), syn(3)...))
	f.Add(append([]byte("backchannel"), syn(2)...))
	f.Add([]byte("backchannel\x00\x00\x00\x00\x00\x00\x00\x01\xff\xff\xff\xff"))
	f.Add([]byte("backchannel\x00\x02\x00\x01\x00\x00\x00\x00\x00\x00\x00\x07"))
	f.Add([]byte("backchannel\x00\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"))
	f.Add([]byte("backchannel\x07"))

	f.Fuzz(func(t *testing.T, input []byte) {
		registry := backchannel.NewRegistry()
		mux := newMux(insecureCreds(), registry)
		client, server := net.Pipe()
		// gRPC bounds the handshake with ConnectionTimeout; the deadlines
		// here only keep a broken run from hanging.
		deadline := time.Now().Add(2 * time.Second)
		server.SetDeadline(deadline)
		client.SetDeadline(deadline)

		// The client sends its bytes and hangs up.
		go func() {
			defer client.Close()
			client.Write(input)
		}()

		conn, _, err := mux.ServerHandshake(server)
		if err != nil {
			server.Close()
			if registry.Len() != 0 {
				t.Fatalf("failed handshake (%v) left %d peers registered", err, registry.Len())
			}
			return
		}
		got, _ := io.ReadAll(io.LimitReader(conn, 1<<20))
		if !bytes.HasPrefix(input, []byte("backchannel")) && !bytes.Equal(got, input) {
			t.Fatalf("plain connection replayed %q, want exactly what the client sent, %q", got, input)
		}
		if err := conn.Close(); err != nil && registry.Len() != 0 {
			t.Fatalf("close: %v", err)
		}
		if registry.Len() != 0 {
			t.Fatalf("%d peers registered after the connection closed", registry.Len())
		}
	})
}
