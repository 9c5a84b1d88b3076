package host

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"syscall"

	"google.golang.org/grpc/credentials/insecure"
)

// The TLS alerts a server sends when it wants a client certificate it did
// not get: certificate_required in TLS 1.3 (RFC 8446), handshake_failure or
// bad_certificate in TLS 1.2 (RFC 5246; Go and OpenSSL send the first).
const (
	alertHandshakeFailure    tls.AlertError = 40
	alertBadCertificate      tls.AlertError = 42
	alertCertificateRequired tls.AlertError = 116
)

// explain returns the error that best describes why the connection did not
// become ready; nil when nothing was recorded. When what the connection saw
// does not tell (the server closed or reset it without a legible word), it
// looks at the server once more (see probe.go), within ctx.
func (c *Conn) explain(ctx context.Context) error {
	f := c.diag.snapshot()
	addr := c.cfg.Address
	switch {
	case f.dialErr != nil:
		if isTimeout(f.dialErr) {
			return c.timeoutErr("the server did not accept the connection")
		}
		return fmt.Errorf("%w %s: %w", ErrConnect, addr, unwrapOpError(f.dialErr))
	case f.handshakeErr != nil:
		return c.explainHandshake(ctx, f.handshakeErr, f.certRequested)
	case !f.handshook:
		return nil
	}
	if err := c.explainAnswer(f.first); err != nil {
		return err
	}
	if alert, ok := receivedAlert(f.readErr); ok {
		if wantsClientCert(alert, f.certRequested) {
			return c.certRequiredErr()
		}
		return fmt.Errorf("%w %s: the server ended the TLS session: %w", ErrConnect, addr, f.readErr)
	}
	switch {
	case len(f.first) == 0 && (f.readErr != nil || f.writeErr != nil):
		return c.explainWordlessClose(ctx, f)
	case len(f.first) == 0 && f.closed:
		// gRPC closes a connection it is still making only when its
		// connect deadline passes (or when told to stop, which the
		// caller's context reports first).
		return c.timeoutErr("the server accepted the connection and sent nothing")
	case f.muxErr != nil:
		return fmt.Errorf("%w %s: multiplexing handshake: %w", ErrConnect, addr, f.muxErr)
	case f.readErr != nil:
		return fmt.Errorf("%w %s: the server closed the connection: %w", ErrConnect, addr, f.readErr)
	case len(f.first) > 0 && (f.closed || f.writeErr != nil):
		return fmt.Errorf("%w %s: the server answered %q, which is neither HTTP/2 nor the backchannel protocol", ErrConnect, addr, f.first)
	}
	return nil
}

// stalled describes how far a connection got that timed out.
func (c *Conn) stalled() error {
	f := c.diag.snapshot()
	switch {
	case !f.dialed:
		return c.timeoutErr("the server did not accept the connection")
	case !f.handshook:
		return c.timeoutErr("the TLS handshake did not finish")
	case len(f.first) == 0:
		return c.timeoutErr("the server accepted the connection and sent nothing")
	}
	return c.timeoutErr("the server did not finish the HTTP/2 handshake")
}

func (c *Conn) timeoutErr(what string) error {
	return fmt.Errorf("%w %s: %w (--connect-timeout %s): %s", ErrConnect, c.cfg.Address, ErrConnectTimeout, c.cfg.ConnectTimeout, what)
}

func (c *Conn) certRequiredErr() error {
	return fmt.Errorf("%w %s: %w: give one with --cert and --key", ErrConnect, c.cfg.Address, ErrClientCertRequired)
}

// explainHandshake explains a TLS handshake that failed.
func (c *Conn) explainHandshake(ctx context.Context, err error, certRequested bool) error {
	addr := c.cfg.Address
	if alert, ok := receivedAlert(err); ok && wantsClientCert(alert, certRequested) {
		return c.certRequiredErr()
	}
	var (
		record   tls.RecordHeaderError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
	)
	switch {
	case isTimeout(err):
		return c.timeoutErr("the TLS handshake did not finish")
	case errors.As(err, &record):
		return fmt.Errorf("%w %s: handshake: %w (%w: use --plaintext)", ErrConnect, addr, err, ErrServerNotTLS)
	case errors.As(err, &unknown):
		return fmt.Errorf("%w %s: handshake: %w (give the server's CA with --cacert, or skip verification with --insecure)", ErrConnect, addr, err)
	case errors.As(err, &hostname):
		return fmt.Errorf("%w %s: handshake: %w (name the server as its certificate does with --authority)", ErrConnect, addr, err)
	case isReset(err) || errors.Is(err, io.EOF):
		// A plain-text server reads the TLS hello as garbage and
		// hangs up; whether its own first bytes arrive before the reset
		// is a matter of timing, so ask it plainly.
		switch c.probe(ctx, insecure.NewCredentials()) {
		case answerHTTP2:
			return fmt.Errorf("%w %s: handshake: %w (%w: it answers plain-text HTTP/2: use --plaintext)", ErrConnect, addr, err, ErrServerNotTLS)
		case answerHTTP1:
			return fmt.Errorf("%w %s: %w: it answers plain-text HTTP/1", ErrConnect, addr, ErrNotHTTP2)
		}
	}
	return fmt.Errorf("%w %s: handshake: %w", ErrConnect, addr, err)
}

// explainAnswer explains a connection by the server's first bytes; nil when
// they do not tell.
func (c *Conn) explainAnswer(first []byte) error {
	addr := c.cfg.Address
	switch answerOf(first) {
	case answerTLSAlert:
		if c.plaintext() {
			return fmt.Errorf("%w %s: %w (it answered with a TLS alert): drop --plaintext", ErrConnect, addr, ErrServerUsesTLS)
		}
	case answerHTTP2:
		if c.Multiplexed() {
			return fmt.Errorf("%w: %s answered the multiplexing handshake as a plain HTTP/2 gRPC server", ErrNotMultiplexing, addr)
		}
	case answerHTTP1:
		return fmt.Errorf("%w %s: %w: it answers in HTTP/1 (%q)", ErrConnect, addr, ErrNotHTTP2, firstLine(first))
	}
	return nil
}

// explainWordlessClose explains a server that closed or reset the
// connection before it sent anything legible. Whether a plain gRPC
// server's SETTINGS, or a TLS server's alert, arrives before its reset (or
// before a write into the reset connection ends it) is a matter of timing,
// so the connection alone cannot tell: a second look asks the server
// questions whose answers do not race.
func (c *Conn) explainWordlessClose(ctx context.Context, f facts) error {
	addr := c.cfg.Address
	switch c.probe(ctx, c.base) {
	case answerHTTP2:
		if c.Multiplexed() {
			return fmt.Errorf("%w: %s hung up on the multiplexing handshake, and answers as a plain HTTP/2 gRPC server", ErrNotMultiplexing, addr)
		}
	case answerHTTP1:
		return fmt.Errorf("%w %s: %w: it answers in HTTP/1", ErrConnect, addr, ErrNotHTTP2)
	case answerCertRequired:
		return c.certRequiredErr()
	}
	if f.certRequested {
		// It asked for a certificate, got none, and hung up.
		return c.certRequiredErr()
	}
	if c.plaintext() && c.probeTLS(ctx) {
		return fmt.Errorf("%w %s: %w (it answered a TLS hello): drop --plaintext", ErrConnect, addr, ErrServerUsesTLS)
	}
	cause := f.readErr
	if cause == nil {
		cause = f.writeErr
	}
	return fmt.Errorf("%w %s: the server closed the connection without a word: %w", ErrConnect, addr, unwrapOpError(cause))
}

// wantsClientCert reports whether a TLS alert says that the server wanted
// a client certificate: certificate_required (TLS 1.3), or in TLS 1.2
// handshake_failure or bad_certificate after a request none could answer.
func wantsClientCert(alert tls.AlertError, certRequested bool) bool {
	return alert == alertCertificateRequired ||
		(certRequested && (alert == alertHandshakeFailure || alert == alertBadCertificate))
}

// receivedAlert returns the TLS alert the server sent, when err reports
// one. crypto/tls reports a received alert as a *net.OpError whose Err is
// its unexported alert type, a uint8 like tls.AlertError.
func receivedAlert(err error) (tls.AlertError, bool) {
	var ae tls.AlertError
	if errors.As(err, &ae) {
		return ae, true
	}
	var op *net.OpError
	if !errors.As(err, &op) || op.Err == nil {
		return 0, false
	}
	v := reflect.ValueOf(op.Err)
	if v.Kind() == reflect.Uint8 && v.Type().PkgPath() == "crypto/tls" {
		return tls.AlertError(v.Uint()), true
	}
	return 0, false
}

// isTimeout reports an error that says a deadline passed.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout())
}

// isReset reports an error that says the peer reset the connection.
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// unwrapOpError drops the "dial tcp" prefix layers that net adds, keeping
// the reason ("connect: connection refused").
func unwrapOpError(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}

// firstLine returns p up to its first line break.
func firstLine(p []byte) []byte {
	if i := bytes.IndexAny(p, "\r\n"); i >= 0 {
		return p[:i]
	}
	return p
}
