package sidechannel

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// outcome is how a body ends: properly, with broken framing, or cut short.
type outcome int

const (
	complete outcome = iota
	invalid
	truncated
)

// decodeReference decodes a body straight from the framing rules, as a
// second opinion for the fuzzer: the payload before the end, and how the
// body ends.
func decodeReference(in []byte) ([]byte, outcome) {
	var out []byte
	for {
		if len(in) < packetHeaderLen {
			return out, truncated
		}
		length := 0
		for _, c := range in[:packetHeaderLen] {
			d, ok := hexDigit(c)
			if !ok {
				return out, invalid
			}
			length = length*16 + d
		}
		in = in[packetHeaderLen:]
		switch {
		case length == 0:
			return out, complete
		case length < packetHeaderLen || length > maxPacketLen:
			return out, invalid
		}
		n := length - packetHeaderLen
		if len(in) < n {
			return append(out, in...), truncated
		}
		out = append(out, in[:n]...)
		in = in[n:]
	}
}

// FuzzPacketReader feeds arbitrary bytes to the server's body reader,
// whole and in pieces: it never panics, delivers exactly the payload the
// framing rules give, and ends the way they say (io.EOF after the flush,
// ErrInvalidPacket or io.ErrUnexpectedEOF otherwise). Whatever the input,
// framing it with the client's writer and reading it back gives it back.
func FuzzPacketReader(f *testing.F) {
	f.Add([]byte("0009hello0000"))
	f.Add([]byte("00040000"))
	f.Add([]byte("0001"))
	f.Add([]byte("fff1"))
	f.Add([]byte("000Ahello!0000"))
	f.Add([]byte("0009hel"))
	f.Add([]byte(""))
	f.Add([]byte("zzzz"))
	f.Fuzz(func(t *testing.T, in []byte) {
		want, wantEnd := decodeReference(in)
		for name, r := range map[string]io.Reader{
			"whole": bytes.NewReader(in),
			"half":  iotest.HalfReader(bytes.NewReader(in)),
		} {
			got, err := io.ReadAll(&packetReader{r: r})
			if !bytes.Equal(got, want) {
				t.Fatalf("%s: read %q, want %q", name, got, want)
			}
			var end outcome
			switch {
			case err == nil:
				end = complete
			case errors.Is(err, ErrInvalidPacket):
				end = invalid
			case errors.Is(err, io.ErrUnexpectedEOF):
				end = truncated
			default:
				t.Fatalf("%s: unexpected error %v", name, err)
			}
			if end != wantEnd {
				t.Fatalf("%s: ended as %d (%v), want %d", name, end, err, wantEnd)
			}
		}

		var framed bytes.Buffer
		w := &packetWriter{w: &framed}
		if _, err := w.Write(in); err != nil {
			t.Fatal(err)
		}
		if err := w.flush(); err != nil {
			t.Fatal(err)
		}
		back, err := io.ReadAll(&packetReader{r: &framed})
		if err != nil || !bytes.Equal(back, in) {
			t.Fatalf("round trip gave %q, %v; want the input back", back, err)
		}
	})
}
