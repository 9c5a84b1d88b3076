package backchannel

import (
	"bytes"
	"encoding/binary"
	"net"
	"testing"
)

// writeRecorder records each Write as one element.
type writeRecorder struct {
	net.Conn
	writes [][]byte
}

func (w *writeRecorder) Write(p []byte) (int, error) {
	w.writes = append(w.writes, append([]byte(nil), p...))
	return len(p), nil
}

func header(typ byte, length uint32) []byte {
	h := make([]byte, yamuxHeaderLen)
	h[1] = typ
	binary.BigEndian.PutUint32(h[8:], length)
	return h
}

// TestCoalescingConn checks which writes are merged: a data header with a
// body goes out with its body; every other frame goes out as it comes.
// (Over TCP the merge is a writev; that path is covered by every test that
// runs over 127.0.0.1.)
func TestCoalescingConn(t *testing.T) {
	small := bytes.Repeat([]byte("s"), 100)
	large := bytes.Repeat([]byte("L"), coalesceLimit+1)
	windowUpdate := header(1, 4096)
	emptyData := header(yamuxTypeData, 0) // a data frame with flags only, e.g. FIN

	tests := []struct {
		name   string
		writes [][]byte
		want   [][]byte
	}{
		{
			name:   "data header and body",
			writes: [][]byte{header(yamuxTypeData, 100), small},
			want:   [][]byte{append(header(yamuxTypeData, 100), small...)},
		},
		{
			name:   "window update passes",
			writes: [][]byte{windowUpdate},
			want:   [][]byte{windowUpdate},
		},
		{
			name:   "empty data frame passes",
			writes: [][]byte{emptyData},
			want:   [][]byte{emptyData},
		},
		{
			name:   "large body keeps its own write",
			writes: [][]byte{header(yamuxTypeData, uint32(len(large))), large},
			want:   [][]byte{header(yamuxTypeData, uint32(len(large))), large},
		},
		{
			name:   "sequence",
			writes: [][]byte{windowUpdate, header(yamuxTypeData, 100), small, emptyData, header(yamuxTypeData, 100), small},
			want:   [][]byte{windowUpdate, append(header(yamuxTypeData, 100), small...), emptyData, append(header(yamuxTypeData, 100), small...)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &writeRecorder{}
			conn := newCoalescingConn(rec, nil)
			for _, w := range tt.writes {
				n, err := conn.Write(w)
				if err != nil || n != len(w) {
					t.Fatalf("Write(%d bytes) = %d, %v", len(w), n, err)
				}
			}
			if len(rec.writes) != len(tt.want) {
				t.Fatalf("%d writes reached the connection, want %d", len(rec.writes), len(tt.want))
			}
			for i := range tt.want {
				if !bytes.Equal(rec.writes[i], tt.want[i]) {
					t.Errorf("write %d = %d bytes starting %q, want %d bytes starting %q", i, len(rec.writes[i]), rec.writes[i][:min(16, len(rec.writes[i]))], len(tt.want[i]), tt.want[i][:min(16, len(tt.want[i]))])
				}
			}
		})
	}
}
