package sidechannel

import "errors"

// Errors callers branch on. Every error the package returns wraps one of
// these, an io error (io.EOF never, io.ErrUnexpectedEOF for a body cut
// short), a context error, or backchannel.ErrNonMultiplexedConnection.
var (
	// ErrMissingID: the call has no gitaly-sidechannel-id metadata, so the
	// client registered no sidechannel for it.
	ErrMissingID = errors.New("sidechannel: " + MetadataKey + " not found in incoming metadata")

	// ErrNotAcknowledged: the client did not answer the preamble with
	// "ok" within HandshakeTimeout. The wrapping error says what came
	// instead: end of stream (the client knows no such ID, or the call is
	// over), other bytes (a client that does not route sidechannel streams
	// answers with HTTP/2), or nothing.
	ErrNotAcknowledged = errors.New("sidechannel: the client did not acknowledge the sidechannel")

	// ErrInvalidPacket: the client's body breaks the framing rules (a
	// length that is not four hex digits, 0001 to 0003, or above 65520).
	ErrInvalidPacket = errors.New("sidechannel: invalid packet")

	// ErrUnknownID: the server opened a sidechannel whose ID no pending
	// call registered (it was never registered, already used, or its
	// Waiter closed). The client closes such a stream without a word.
	ErrUnknownID = errors.New("sidechannel: no pending sidechannel with this ID")

	// ErrCallbackNotRun: Waiter.Close found that the server never opened
	// the sidechannel.
	ErrCallbackNotRun = errors.New("sidechannel: callback de-registered without having run")

	// ErrWriteClosed: ClientConn.Write after CloseWrite.
	ErrWriteClosed = errors.New("sidechannel: write after CloseWrite")
)
