// Package proxy is the engine of `bcctl proxy`: it sits between a real
// backchannel client (Praefect's role) and a real upstream (Gitaly's), and
// relays everything they say to each other, in both directions, without
// needing their schema.
//
// # Links
//
// Every client connection gets its own upstream connection of the same
// kind: multiplexed when the client did the backchannel handshake, plain
// when it did not (both kinds share the listener). The pair is a link. A
// reverse call the upstream makes on a link's upstream connection is
// relayed into that link's client and no other, because the proxy serves
// each upstream connection's backchannel with the link attached to every
// stream. When the client's connection closes, its upstream connection is
// closed too, so the upstream sees its peer leave; when the upstream
// connection fails, gRPC reconnects it for the same client.
//
// # Relaying
//
// Calls of all four kinds are relayed as streams of raw messages (a codec
// that hands gRPC's buffers from one side to the other without copying or
// parsing them): request metadata, messages each way in order, the
// caller's half-close, the callee's response header, trailer and status
// with its details. The caller's deadline travels to the callee;
// cancellation travels both ways (a caller that cancels or goes away
// cancels the callee's call; a callee that goes away ends the caller's
// call with UNAVAILABLE). The proxy holds at most one message per
// direction of a call, so a slow reader slows its writer through both
// sides' flow control and nothing is buffered without bound.
//
// A call the proxy cannot deliver (the upstream is down or refuses the
// connection, a client's backchannel is gone) ends with UNAVAILABLE and a
// message that names what could not be reached; the proxy keeps serving
// everyone else.
//
// # Seeing
//
// An Observer is told of every connection and call: the messages as they
// travelled (Config.KeepMessages bytes of them), both legs' timing, which
// side ended a call that did not end with an answer, and for a reverse
// call the forward call in flight that caused it.
package proxy
