package host

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"

	"google.golang.org/grpc/credentials"
)

// answer is what kind of server a few bytes come from.
type answer int

const (
	answerUnknown  answer = iota
	answerHTTP2           // an HTTP/2 SETTINGS frame: a gRPC server
	answerHTTP1           // an HTTP/1 status line
	answerTLSAlert        // a TLS alert record, to a plain-text client
	// answerCertRequired is a TLS alert saying that a client certificate
	// is required (only from probe).
	answerCertRequired
)

// http2Preface is what every HTTP/2 client sends first, and exactly what a
// gRPC server reads before it answers.
const http2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// answerOf tells what kind of server sent p first.
func answerOf(p []byte) answer {
	switch {
	case looksLikeHTTP2Settings(p):
		return answerHTTP2
	case bytes.HasPrefix(p, []byte("HTTP/1.")):
		return answerHTTP1
	case looksLikeTLSAlert(p):
		return answerTLSAlert
	}
	return answerUnknown
}

// looksLikeHTTP2Settings reports whether p starts with an HTTP/2 SETTINGS
// frame on stream 0, which is what a plain gRPC server sends first. A
// multiplexing server answers with a yamux frame instead, whose stream ID
// is never 0 for the frame type and flags this would be read as.
func looksLikeHTTP2Settings(p []byte) bool {
	return len(p) >= 9 && p[3] == 0x04 && p[4]&^0x01 == 0 &&
		p[5]&0x7f == 0 && p[6] == 0 && p[7] == 0 && p[8] == 0
}

// looksLikeTLSAlert reports whether p starts with a TLS alert record.
func looksLikeTLSAlert(p []byte) bool {
	return len(p) >= 3 && p[0] == 0x15 && p[1] == 0x03
}

// probe makes a second connection to the server, secured by creds but
// without the multiplexing handshake, sends the HTTP/2 client preface and
// tells what the server answers. It sends exactly what a gRPC server reads
// before it answers, and only the preface to any other server, so the
// answer does not race with the server hanging up (unlike on a multiplexed
// connection, which sends more than a plain server reads). It gives up when
// ctx ends.
func (c *Conn) probe(ctx context.Context, creds credentials.TransportCredentials) answer {
	raw, err := c.dialRaw(ctx)
	if err != nil {
		return answerUnknown
	}
	defer raw.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = raw.SetDeadline(dl)
	}
	conn, _, err := creds.Clone().ClientHandshake(ctx, c.authority(), raw)
	if err != nil {
		if alert, ok := receivedAlert(err); ok && alert == alertCertificateRequired {
			return answerCertRequired
		}
		return answerUnknown
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, http2Preface); err != nil {
		return answerUnknown
	}
	buf := make([]byte, sniffLen)
	n, err := io.ReadAtLeast(conn, buf, 9)
	if alert, ok := receivedAlert(err); ok && n == 0 && alert == alertCertificateRequired {
		return answerCertRequired
	}
	return answerOf(buf[:n])
}

// probeTLS makes a second connection to the server and reports whether it
// answers a TLS hello as a TLS server does. Nothing is verified: the
// question is only whether the server speaks TLS.
func (c *Conn) probeTLS(ctx context.Context) bool {
	raw, err := c.dialRaw(ctx)
	if err != nil {
		return false
	}
	defer raw.Close()
	host, _, err := net.SplitHostPort(c.authority())
	if err != nil {
		host = c.authority()
	}
	conn := tls.Client(raw, &tls.Config{ServerName: host, InsecureSkipVerify: true}) //nolint:gosec // only asks whether the server speaks TLS
	err = conn.HandshakeContext(ctx)
	if err == nil {
		_ = conn.Close()
		return true
	}
	_, alert := receivedAlert(err)
	return alert
}
