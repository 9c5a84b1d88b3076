package sidechannel

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

// TestPacketWriter checks the framing of bodies around the packet
// boundary, through Write and through ReadFrom: lower-case, zero-padded
// lengths that count themselves, full packets of MaxPacketPayload bytes,
// then the remainder, and nothing for an empty write.
func TestPacketWriter(t *testing.T) {
	tests := []struct {
		size        int
		wantHeaders []string
	}{
		{size: 0},
		{size: 1, wantHeaders: []string{"0005"}},
		{size: 6, wantHeaders: []string{"000a"}},
		{size: MaxPacketPayload, wantHeaders: []string{"fff0"}},
		{size: MaxPacketPayload + 1, wantHeaders: []string{"fff0", "0005"}},
		{size: 2*MaxPacketPayload + 3, wantHeaders: []string{"fff0", "fff0", "0007"}},
	}
	writers := map[string]func(w *packetWriter, body []byte) error{
		"Write": func(w *packetWriter, body []byte) error { _, err := w.Write(body); return err },
		"ReadFrom": func(w *packetWriter, body []byte) error {
			_, err := w.ReadFrom(bytes.NewReader(body))
			return err
		},
	}
	for name, write := range writers {
		for _, tt := range tests {
			body := bytes.Repeat([]byte{'x'}, tt.size)
			var out bytes.Buffer
			w := &packetWriter{w: &out}
			if err := write(w, body); err != nil {
				t.Fatalf("%s(%d bytes): %v", name, tt.size, err)
			}
			var want strings.Builder
			rest := body
			for _, h := range tt.wantHeaders {
				n := min(len(rest), MaxPacketPayload)
				want.WriteString(h)
				want.Write(rest[:n])
				rest = rest[n:]
			}
			if out.String() != want.String() {
				t.Errorf("%s(%d bytes) wrote %d bytes beginning %.12q, want packets %v", name, tt.size, out.Len(), out.String(), tt.wantHeaders)
			}
		}
	}
}

// TestPacketReader checks what the server's reader accepts and how it
// refuses the rest.
func TestPacketReader(t *testing.T) {
	full := strings.Repeat("y", MaxPacketPayload)
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr error  // nil: the body ends properly with io.EOF
		wantMsg string // in the error
	}{
		{name: "empty body", in: "0000"},
		{name: "one packet", in: "0009hello0000", want: "hello"},
		{name: "empty packet", in: "00040006hi00040000", want: "hi"},
		{name: "upper-case hex", in: "000AABCDEF0000", want: "ABCDEF"},
		{name: "largest packet", in: "fff0" + full + "FFF0" + full + "0000", want: full + full},
		{name: "0001", in: "0001", wantErr: ErrInvalidPacket, wantMsg: "invalid length 0001"},
		{name: "0002", in: "0002", wantErr: ErrInvalidPacket, wantMsg: "invalid length 0002"},
		{name: "0003", in: "0003abc", wantErr: ErrInvalidPacket, wantMsg: "invalid length 0003"},
		{name: "too long", in: "fff1" + full + "x", wantErr: ErrInvalidPacket, wantMsg: "length fff1 is above the maximum fff0"},
		{name: "not hex", in: "00g9hello0000", wantErr: ErrInvalidPacket, wantMsg: `length "00g9" is not four hex digits`},
		{name: "sign", in: "+009hello0000", wantErr: ErrInvalidPacket, wantMsg: "not four hex digits"},
		{name: "space", in: " 009hello0000", wantErr: ErrInvalidPacket, wantMsg: "not four hex digits"},
		{name: "nothing", in: "", wantErr: io.ErrUnexpectedEOF, wantMsg: "the body ended without its flush packet (0000)"},
		{name: "no flush", in: "0009hello", want: "hello", wantErr: io.ErrUnexpectedEOF, wantMsg: "without its flush packet"},
		{name: "cut payload", in: "0009hel", want: "hel", wantErr: io.ErrUnexpectedEOF, wantMsg: "packet cut short, 2 bytes of payload missing"},
		{name: "cut length", in: "0009hello00", want: "hello", wantErr: io.ErrUnexpectedEOF, wantMsg: `packet length "00" cut short`},
	}
	readers := map[string]func(string) io.Reader{
		"whole":    func(s string) io.Reader { return strings.NewReader(s) },
		"one byte": func(s string) io.Reader { return iotest.OneByteReader(strings.NewReader(s)) },
	}
	for name, newReader := range readers {
		for _, tt := range tests {
			t.Run(name+"/"+tt.name, func(t *testing.T) {
				got, err := io.ReadAll(&packetReader{r: newReader(tt.in)})
				if string(got) != tt.want {
					t.Errorf("read %d bytes beginning %.12q, want %d beginning %.12q", len(got), got, len(tt.want), tt.want)
				}
				switch {
				case tt.wantErr == nil && err != nil:
					t.Errorf("error %v, want the body to end properly", err)
				case tt.wantErr != nil && (!errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.wantMsg)):
					t.Errorf("error %v, want one wrapping %v and saying %q", err, tt.wantErr, tt.wantMsg)
				}
			})
		}
	}
}

// TestPacketReaderStopsAtFlush checks that nothing after the flush packet
// is consumed, and that the end and errors are sticky.
func TestPacketReaderStopsAtFlush(t *testing.T) {
	src := strings.NewReader("0006ok0000after")
	r := &packetReader{r: src}
	got, err := io.ReadAll(r)
	if err != nil || string(got) != "ok" {
		t.Fatalf("ReadAll = %q, %v; want \"ok\", nil", got, err)
	}
	if n, err := r.Read(make([]byte, 8)); n != 0 || err != io.EOF {
		t.Errorf("Read after the flush = %d, %v; want 0, io.EOF", n, err)
	}
	if rest, _ := io.ReadAll(src); string(rest) != "after" {
		t.Errorf("left unread %q, want %q", rest, "after")
	}

	bad := &packetReader{r: strings.NewReader("0002")}
	_, first := bad.Read(make([]byte, 8))
	_, second := bad.Read(make([]byte, 8))
	if !errors.Is(first, ErrInvalidPacket) || first != second { //nolint:errorlint // the very same error
		t.Errorf("errors %v then %v, want the same ErrInvalidPacket twice", first, second)
	}
}

// writeCounter records the size of each write.
type writeCounter struct{ sizes []int }

func (w *writeCounter) Write(p []byte) (int, error) {
	w.sizes = append(w.sizes, len(p))
	return len(p), nil
}

// TestPacketWriterBatches checks that packets travel in batches of up to
// maxBatch bytes, one write each, and that ReadFrom does not hold back
// what a slow source has given.
func TestPacketWriterBatches(t *testing.T) {
	tests := []struct {
		name      string
		write     func(w *packetWriter) error
		wantSizes []int
	}{
		{name: "Write of 3 packets", write: func(w *packetWriter) error {
			_, err := w.Write(make([]byte, 2*MaxPacketPayload+3))
			return err
		}, wantSizes: []int{2*maxPacketLen + 7}},
		{name: "Write of 17 full packets", write: func(w *packetWriter) error {
			_, err := w.Write(make([]byte, 17*MaxPacketPayload))
			return err
		}, wantSizes: []int{maxBatch, maxPacketLen}},
		{name: "ReadFrom a whole file", write: func(w *packetWriter) error {
			_, err := w.ReadFrom(bytes.NewReader(make([]byte, 17*MaxPacketPayload)))
			return err
		}, wantSizes: []int{maxBatch, maxPacketLen}},
		{name: "ReadFrom a byte at a time", write: func(w *packetWriter) error {
			_, err := w.ReadFrom(iotest.OneByteReader(strings.NewReader("abc")))
			return err
		}, wantSizes: []int{5, 5, 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out writeCounter
			if err := tt.write(&packetWriter{w: &out}); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(out.sizes, tt.wantSizes) {
				t.Errorf("writes of %v bytes, want %v", out.sizes, tt.wantSizes)
			}
		})
	}
}
