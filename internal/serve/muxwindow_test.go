package serve

import (
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"
)

// TestMuxWindow checks the window serve advertises to a multiplexed peer,
// on the wire: the acknowledgement of the peer's first stream carries the
// window above yamux's initial 256 KiB.
func TestMuxWindow(t *testing.T) {
	const initial = 256 << 10
	tests := []struct {
		name   string
		window uint32
		want   uint32
	}{
		{name: "default (Gitaly's)", want: 16 << 20},
		{name: "256KiB", window: 256 << 10, want: 256 << 10},
		{name: "64MiB", window: 64 << 20, want: 64 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, addr, _ := startServe(t, voteScript, func(c *Config) { c.MuxWindow = tt.window })
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(30 * time.Second))
			// The magic, then a yamux SYN (window update) for stream 1.
			syn := make([]byte, 12)
			syn[1] = 1
			binary.BigEndian.PutUint16(syn[2:], 1)
			binary.BigEndian.PutUint32(syn[4:], 1)
			if _, err := conn.Write(append([]byte("backchannel"), syn...)); err != nil {
				t.Fatal(err)
			}
			for {
				hdr := make([]byte, 12)
				if _, err := io.ReadFull(conn, hdr); err != nil {
					t.Fatalf("read a yamux frame: %v", err)
				}
				typ, flags := hdr[1], binary.BigEndian.Uint16(hdr[2:])
				stream, length := binary.BigEndian.Uint32(hdr[4:]), binary.BigEndian.Uint32(hdr[8:])
				if typ == 0 { // data: skip its body
					if _, err := io.CopyN(io.Discard, conn, int64(length)); err != nil {
						t.Fatal(err)
					}
					continue
				}
				if typ == 1 && stream == 1 && flags&2 != 0 {
					if got := length + initial; got != tt.want {
						t.Errorf("window %d bytes, want %d", got, tt.want)
					}
					return
				}
			}
		})
	}
}
