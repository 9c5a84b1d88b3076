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
// MaxPacketPayload bytes. It joins the packets of one Write, up to
// maxBatch bytes, into one write to the stream: each stream write waits
// for yamux's send loop and becomes a yamux frame of its own, so one per
// packet would cost a hand-off and a frame every 64 KiB. A zero-length
// write sends nothing.
type packetWriter struct {
	w       io.Writer
	buf     []byte // packets not yet written; its capacity is kept until flush
	pending int    // payload bytes in buf
}

// maxBatch is the most framed bytes one write to the stream carries: 16
// full packets, just under 1 MiB.
const maxBatch = 16 * maxPacketLen

func (pw *packetWriter) Write(p []byte) (int, error) {
	if cap(pw.buf) == 0 {
		pw.buf = make([]byte, 0, min(maxBatch, framedLen(len(p))))
	}
	written := 0
	for len(p) > 0 {
		if pw.room() == 0 {
			n, err := pw.send()
			written += n
			if err != nil {
				return written, err
			}
		}
		n := min(len(p), pw.room())
		pw.buf = appendHeader(pw.buf, n)
		pw.buf = append(pw.buf, p[:n]...)
		pw.pending += n
		p = p[n:]
	}
	n, err := pw.send()
	return written + n, err
}

// ReadFrom frames what r yields, reading straight into the batch. It
// writes the batch when it is full, and whenever r returns less than a
// full packet: a source that has nothing more just now (a pipe, a
// terminal) is not held back.
func (pw *packetWriter) ReadFrom(r io.Reader) (int64, error) {
	if cap(pw.buf) < maxBatch {
		pw.buf = make([]byte, 0, maxBatch)
	}
	var total int64
	for {
		room := pw.room()
		if room == 0 {
			n, err := pw.send()
			total += int64(n)
			if err != nil {
				return total, err
			}
			room = pw.room()
		}
		start := len(pw.buf)
		n, err := r.Read(pw.buf[start+packetHeaderLen : start+packetHeaderLen+room])
		if n > 0 {
			pw.buf = appendHeader(pw.buf, n)[:start+packetHeaderLen+n]
			pw.pending += n
		}
		if n < room || err != nil {
			sent, sendErr := pw.send()
			total += int64(sent)
			switch {
			case sendErr != nil:
				return total, sendErr
			case errors.Is(err, io.EOF):
				return total, nil
			case err != nil:
				return total, err
			}
		}
	}
}

// room is the most payload the next packet of the batch may carry; 0 when
// the batch is full.
func (pw *packetWriter) room() int {
	return max(0, min(MaxPacketPayload, maxBatch-len(pw.buf)-packetHeaderLen))
}

// send writes the batch and returns how much payload it carried.
func (pw *packetWriter) send() (int, error) {
	if len(pw.buf) == 0 {
		return 0, nil
	}
	_, err := pw.w.Write(pw.buf)
	n := pw.pending
	pw.buf, pw.pending = pw.buf[:0], 0
	if err != nil {
		return 0, err
	}
	return n, nil
}

// flush writes the flush packet and releases the batch's memory.
func (pw *packetWriter) flush() error {
	pw.buf = nil
	_, err := io.WriteString(pw.w, flushPacket)
	return err
}

// appendHeader appends the length of a packet with n payload bytes as four
// lower-case hex digits.
func appendHeader(buf []byte, n int) []byte {
	const digits = "0123456789abcdef"
	length := n + packetHeaderLen
	return append(buf, digits[length>>12&0xf], digits[length>>8&0xf], digits[length>>4&0xf], digits[length&0xf])
}

// framedLen is the size of n payload bytes once framed.
func framedLen(n int) int {
	packets := (n + MaxPacketPayload - 1) / MaxPacketPayload
	return n + packets*packetHeaderLen
}
