package host

import "errors"

// The errors of Dial wrap ErrConnect, and one of the others when the cause
// is known, so that callers (and tests) branch on the cause rather than on
// the message.
var (
	// ErrConnect is wrapped by the errors of Dial when the connection could
	// not be made: refused, timed out, a failed TLS handshake.
	ErrConnect = errors.New("cannot connect to")

	// ErrNotMultiplexing is wrapped by the errors of Dial when the server
	// did not answer the backchannel handshake: it is a plain gRPC server
	// (or something else). Dialing with Config.NoMux connects to such
	// servers.
	ErrNotMultiplexing = errors.New("the server does not speak the backchannel protocol")

	// ErrConnectTimeout is wrapped when Config.ConnectTimeout passed before
	// the connection was ready, and nothing else went wrong first.
	ErrConnectTimeout = errors.New("the connect timeout passed")

	// ErrClientCertRequired is wrapped when the server asked for a client
	// certificate, none was given, and the server ended the connection.
	ErrClientCertRequired = errors.New("the server requires a client certificate")

	// ErrNotHTTP2 is wrapped when the server answers in HTTP/1: whatever
	// listens there is not a gRPC server.
	ErrNotHTTP2 = errors.New("the port does not speak HTTP/2, so not gRPC")

	// ErrServerUsesTLS is wrapped when a plain-text connection meets a
	// server that speaks TLS.
	ErrServerUsesTLS = errors.New("the server speaks TLS")

	// ErrServerNotTLS is wrapped when a TLS connection meets a server that
	// does not speak TLS.
	ErrServerNotTLS = errors.New("the server does not speak TLS")
)
