package backchannel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"
)

// chunkConn hands out its input in reads of at most chunk bytes and
// records writes.
type chunkConn struct {
	net.Conn
	in     []byte
	chunk  int
	closed bool
}

func (c *chunkConn) Read(p []byte) (int, error) {
	if len(c.in) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), c.chunk)], c.in)
	c.in = c.in[n:]
	return n, nil
}

func (c *chunkConn) Write(p []byte) (int, error) { return len(p), nil }
func (c *chunkConn) Close() error                { c.closed = true; return nil }
func (c *chunkConn) RemoteAddr() net.Addr        { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }

func frame(typ byte, flags uint16, stream, length uint32) []byte {
	h := make([]byte, yamuxHeaderLen)
	h[1] = typ
	binary.BigEndian.PutUint16(h[2:4], flags)
	binary.BigEndian.PutUint32(h[4:8], stream)
	binary.BigEndian.PutUint32(h[8:12], length)
	return h
}

// trafficWithPings returns a byte stream of frames with n ping requests
// among them. Data frames carry bodies made of bytes that read as ping
// headers, and the peer also sends ping answers: neither may be counted.
func trafficWithPings(n int) []byte {
	fakePings := bytes.Repeat(frame(yamuxTypePing, yamuxFlagSYN, 0, 7), 50)
	var b []byte
	b = append(b, frame(1, yamuxFlagSYN, 1, 0)...)
	for i := range n {
		b = append(b, frame(yamuxTypeData, 0, 1, uint32(len(fakePings)))...)
		b = append(b, fakePings...)
		b = append(b, frame(yamuxTypePing, yamuxFlagACK, 0, uint32(i))...)
		b = append(b, frame(1, 0, 1, 4096)...)
		b = append(b, frame(yamuxTypePing, yamuxFlagSYN, 0, uint32(i))...)
	}
	return b
}

// readAll reads g to the end and returns the bytes read and the error
// that ended it.
func readAll(g *pingGuard) ([]byte, error) {
	var out []byte
	buf := make([]byte, 4096)
	for {
		n, err := g.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			return out, err
		}
	}
}

// TestPingGuardCountsPingsAcrossReads feeds the guard traffic split into
// reads of every size from 1 byte up: it passes every byte unchanged while
// the budget lasts, counts only real ping requests, and drops the peer at
// the first ping beyond the burst.
func TestPingGuardCountsPingsAcrossReads(t *testing.T) {
	frozen := time.Unix(1_000_000, 0)
	within := trafficWithPings(PingBurst)
	beyond := trafficWithPings(PingBurst + 1)
	for chunk := 1; chunk <= 2*yamuxHeaderLen+1; chunk++ {
		conn := &chunkConn{in: within, chunk: chunk}
		g := newPingGuard(conn, slog.New(slog.DiscardHandler))
		g.now = func() time.Time { return frozen }
		got, err := readAll(g)
		if err != io.EOF || !bytes.Equal(got, within) {
			t.Fatalf("chunk %d, %d pings: read %d of %d bytes, error %v; want all of them and EOF", chunk, PingBurst, len(got), len(within), err)
		}

		conn = &chunkConn{in: beyond, chunk: chunk}
		g = newPingGuard(conn, slog.New(slog.DiscardHandler))
		g.now = func() time.Time { return frozen }
		if _, err := readAll(g); !errors.Is(err, errPingFlood) || !conn.closed {
			t.Fatalf("chunk %d, %d pings: error %v, closed %v; want errPingFlood and the connection closed", chunk, PingBurst+1, err, conn.closed)
		}
	}
}

// TestPingGuardBudget checks the budget's two rules: pings keep coming at
// PingsPerSecond once the burst is spent, and no more than PingBurst may
// wait for their answer, however slowly they come.
func TestPingGuardBudget(t *testing.T) {
	ping := frame(yamuxTypePing, yamuxFlagSYN, 0, 1)
	answer := frame(yamuxTypePing, yamuxFlagACK, 0, 1)
	tests := []struct {
		name     string
		interval time.Duration // between pings
		answered bool          // whether each ping is answered before the next
		pings    int
		wantDrop bool
	}{
		{"answered at the rate", time.Second / PingsPerSecond, true, 10 * PingBurst, false},
		{"answered, faster than the rate", time.Second / (2 * PingsPerSecond), true, 10 * PingBurst, true},
		{"unanswered at the rate", time.Second / PingsPerSecond, false, PingBurst, false},
		{"unanswered at the rate, one too many", time.Second / PingsPerSecond, false, PingBurst + 1, true},
		{"unanswered, once a minute", time.Minute, false, PingBurst + 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := &chunkConn{chunk: yamuxHeaderLen}
			g := newPingGuard(conn, slog.New(slog.DiscardHandler))
			clock := time.Unix(1_000_000, 0)
			g.now = func() time.Time { return clock }
			buf := make([]byte, yamuxHeaderLen)
			dropped := -1
			for i := range tt.pings {
				conn.in = ping
				if _, err := g.Read(buf); err != nil {
					dropped = i
					break
				}
				if tt.answered {
					g.Write(answer)
				}
				clock = clock.Add(tt.interval)
			}
			if gotDrop := dropped >= 0; gotDrop != tt.wantDrop {
				t.Errorf("dropped at ping %d (-1: never), want dropped: %v", dropped, tt.wantDrop)
			}
		})
	}
}
