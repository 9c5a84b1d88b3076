package sidechannel

import (
	"errors"
	"fmt"
	"io"
)

// packetReader reads the client's framed body: Read returns the payload of
// its packets and io.EOF after the flush packet. It reads only what a
// packet announces, so the bytes after the flush stay unread. Its errors
// are sticky.
type packetReader struct {
	r         io.Reader
	remaining int // payload bytes of the current packet not yet read
	err       error
	header    [packetHeaderLen]byte
}

func (pr *packetReader) Read(p []byte) (int, error) {
	if pr.err != nil {
		return 0, pr.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	for pr.remaining == 0 {
		length, err := pr.readHeader()
		if err != nil {
			pr.err = err
			return 0, err
		}
		if length == 0 {
			pr.err = io.EOF
			return 0, io.EOF
		}
		pr.remaining = length - packetHeaderLen
	}

	n, err := pr.r.Read(p[:min(len(p), pr.remaining)])
	pr.remaining -= n
	switch {
	case err == nil:
	case errors.Is(err, io.EOF) && pr.remaining == 0:
		// The packet is complete; the next header read tells whether
		// the body ended properly.
		err = nil
	case errors.Is(err, io.EOF):
		err = fmt.Errorf("sidechannel: packet cut short, %d bytes of payload missing: %w", pr.remaining, io.ErrUnexpectedEOF)
	default:
		err = fmt.Errorf("sidechannel: read packet: %w", err)
	}
	pr.err = err
	return n, err
}

// readHeader reads and checks one packet length: 0 for the flush packet,
// otherwise 4 to maxPacketLen.
func (pr *packetReader) readHeader() (int, error) {
	if n, err := io.ReadFull(pr.r, pr.header[:]); err != nil {
		switch {
		case errors.Is(err, io.EOF):
			return 0, fmt.Errorf("sidechannel: the body ended without its flush packet (%s): %w", flushPacket, io.ErrUnexpectedEOF)
		case errors.Is(err, io.ErrUnexpectedEOF):
			return 0, fmt.Errorf("sidechannel: packet length %q cut short: %w", pr.header[:n], err)
		}
		return 0, fmt.Errorf("sidechannel: read packet length: %w", err)
	}
	length := 0
	for _, c := range pr.header {
		d, ok := hexDigit(c)
		if !ok {
			return 0, fmt.Errorf("%w: length %q is not four hex digits", ErrInvalidPacket, pr.header[:])
		}
		length = length<<4 | d
	}
	switch {
	case length > 0 && length < packetHeaderLen:
		return 0, fmt.Errorf("%w: invalid length %04x (a length counts its own four digits)", ErrInvalidPacket, length)
	case length > maxPacketLen:
		return 0, fmt.Errorf("%w: length %04x is above the maximum %04x", ErrInvalidPacket, length, maxPacketLen)
	}
	return length, nil
}

func hexDigit(c byte) (int, bool) {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0'), true
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10, true
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10, true
	}
	return 0, false
}

// packetWriter frames what is written to it into packets of at most
// MaxPacketPayload bytes, each sent with one write (header and payload
// together, so that each becomes one yamux frame). A zero-length write
// sends nothing.
type packetWriter struct {
	w   io.Writer
	buf []byte // header and payload of one packet; allocated on first use
}

func (pw *packetWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		n := min(len(p), MaxPacketPayload)
		buf := pw.buffer()
		copy(buf[packetHeaderLen:], p[:n])
		if err := pw.send(n); err != nil {
			return written, err
		}
		written += n
		p = p[n:]
	}
	return written, nil
}

// ReadFrom frames what r yields, reading straight into the packet buffer.
func (pw *packetWriter) ReadFrom(r io.Reader) (int64, error) {
	buf := pw.buffer()
	var total int64
	for {
		n, err := r.Read(buf[packetHeaderLen:])
		if n > 0 {
			if err := pw.send(n); err != nil {
				return total, err
			}
			total += int64(n)
		}
		switch {
		case errors.Is(err, io.EOF):
			return total, nil
		case err != nil:
			return total, err
		}
	}
}

// send writes the packet whose n payload bytes are in the buffer.
func (pw *packetWriter) send(n int) error {
	const digits = "0123456789abcdef"
	length := n + packetHeaderLen
	buf := pw.buf
	buf[0] = digits[length>>12&0xf]
	buf[1] = digits[length>>8&0xf]
	buf[2] = digits[length>>4&0xf]
	buf[3] = digits[length&0xf]
	_, err := pw.w.Write(buf[:length])
	return err
}

// flush writes the flush packet and releases the buffer.
func (pw *packetWriter) flush() error {
	pw.buf = nil
	_, err := io.WriteString(pw.w, flushPacket)
	return err
}

func (pw *packetWriter) buffer() []byte {
	if pw.buf == nil {
		pw.buf = make([]byte, maxPacketLen)
	}
	return pw.buf
}
