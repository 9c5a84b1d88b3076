// Package sidechannel moves the bulk data of one gRPC call over a raw
// stream beside it, wire-compatible with Gitaly's sidechannel.
//
// Gitaly serves git clone and fetch (PostUploadPackWithSidechannel,
// SSHUploadPackWithSidechannel) not through gRPC messages but through a
// sidechannel: while the call is in flight, the server opens a new yamux
// stream on the caller's multiplexed connection (package backchannel) and
// the call's data flows through it as plain bytes, without protobuf,
// HTTP/2 framing or gRPC flow control. The gRPC call itself carries only
// the request and the status.
//
// # Terminology
//
// The roles are those of the gRPC call, as in package backchannel:
//
//   - client: the caller (Workhorse, gitaly-ssh, bcctl call). It dials with
//     the backchannel handshake, so it is the yamux client and the server
//     of the reverse streams.
//   - server: the callee (Gitaly, bcctl serve). It opens the sidechannel.
//   - sidechannel: the yamux stream the server opens for one call. It is
//     used once.
//   - ID: a number the client picks for a call and sends as the metadata
//     MetadataKey; the server sends it back at the start of the stream so
//     the client knows which call the stream belongs to.
//   - Registry and Waiter: the client's table of pending sidechannels, and
//     one entry in it.
//   - body: what the client sends, framed in packets; response: what the
//     server sends back, raw.
//   - packet: four hex digits giving the packet's length, the four digits
//     included, then the payload (pkt-line framing without a band byte).
//     The flush packet "0000" ends the body.
//   - ServerHandshaker: Gitaly's name for the client's end of the opening
//     handshake; it runs in the client's backchannel server, hence the
//     name.
//
// # The protocol
//
//  1. The client registers a pending sidechannel (RegisterSidechannel) and
//     sends its ID with the call.
//  2. The server's handler opens the sidechannel (OpenSidechannel): a new
//     stream on the caller's session that starts with the 11 bytes
//     "sidechannel" and the ID as a big-endian int64.
//  3. The client's backchannel routes the stream by those bytes (the
//     ServerHandshaker, installed by NewClientHandshaker), takes the ID's
//     Waiter out of the Registry, answers "ok" and runs the Waiter's
//     callback with a ClientConn. The server allows HandshakeTimeout for
//     the answer.
//  4. The client writes its body and CloseWrite ends it; the server reads
//     it from its ServerConn up to io.EOF, writes its response and closes
//     the sidechannel, then returns the gRPC response.
//  5. The client reads the response to io.EOF; when its callback returns,
//     the stream is closed, and Waiter.Close reports the callback's error.
//     The gRPC status decides whether the call succeeded.
//
// # Failures
//
// Each ends with an error and frees the stream and its goroutine:
//
//   - a call without the ID: OpenSidechannel returns ErrMissingID;
//   - a plain (not multiplexed) connection: OpenSidechannel returns
//     backchannel.ErrNonMultiplexedConnection;
//   - an ID the client does not know (never registered, already used, or
//     closed): the client closes the stream and OpenSidechannel returns
//     ErrNotAcknowledged;
//   - a client that does not route sidechannels: its gRPC server answers
//     with HTTP/2, and OpenSidechannel returns ErrNotAcknowledged saying
//     what it got;
//   - a server that never opens the sidechannel: Waiter.Close returns
//     ErrCallbackNotRun;
//   - broken framing, or a body without its flush packet: ServerConn.Read
//     returns ErrInvalidPacket or io.ErrUnexpectedEOF;
//   - a peer that stops reading or writing after the handshake: Gitaly
//     waits forever; here the sidechannel ends with the call's context on
//     either side, and the blocked Read or Write fails saying the call
//     ended.
//
// # Memory and windows
//
// A sidechannel is a yamux stream, so the receive window of the side that
// reads bounds how much is in flight and how much memory a slow reader
// costs: the server's session (backchannel.DefaultServerConfiguration)
// advertises 16 MiB, the client (ClientConfiguration) yamux's 256 KiB.
// Larger client windows speed up responses and cost that much memory per
// concurrent sidechannel when the reader lags; docs/benchmarks.md has
// figures.
//
// The API keeps Gitaly's names (Registry, Waiter, RegisterSidechannel,
// OpenSidechannel, ServerHandshaker, ClientConn, ServerConn) so that code
// written against Gitaly's package ports over.
package sidechannel
