// Package backchannel multiplexes one client connection so that the server
// can invoke RPCs on the client while the client's own calls are running.
//
// gRPC only lets a client call a server. Gitaly, GitLab's Git RPC server,
// needs to ask its caller (Praefect) to vote on a transaction in the middle of
// Praefect's call. This package, wire-compatible with Gitaly's, runs two
// independent gRPC sessions over one TCP or TLS connection:
//
//   - The client writes the 11 magic bytes "backchannel" after the transport
//     handshake and starts a yamux client session. Stream 1 carries the
//     client's ordinary (forward) gRPC connection; every stream the server
//     opens is served by the client's backchannel gRPC server.
//   - The server, behind a listenmux.Mux, starts a yamux server session,
//     accepts stream 1 and hands it to grpc-go, and dials back to the client
//     over streams it opens. The dial-back connection is stored in a Registry
//     under a new ID, and the ID travels in the connection's AuthInfo so that
//     RPC handlers find their caller's backchannel with GetPeerID.
//
// Clients that do not multiplex keep working on the same listener: their
// calls report ErrNonMultiplexedConnection from GetPeerID.
//
// # Usage
//
// Client: build a ClientHandshaker with a ServerFactory that returns the
// server to run on the backchannel of each connection, and dial with
// grpc.WithTransportCredentials(handshaker.ClientHandshake(creds)).
//
// Server: register a ServerHandshaker with a listenmux.Mux and pass the Mux
// to grpc.Creds. In a handler, GetPeerID(ctx) and Registry.Backchannel give a
// *grpc.ClientConn to the calling client.
//
// # Differences from Gitaly
//
// The API keeps Gitaly's names; loggers are *slog.Logger. Beyond Gitaly:
//
//   - the transport credentials' Clone keeps the logger and configuration;
//   - the server's yamux settings are configurable (WithServerConfiguration);
//   - the AuthInfo handed to handlers forwards GetCommonAuthInfo, so
//     credentials.CheckSecurityLevel sees the real security level, and
//     exposes the wrapped AuthInfo (a TLS peer's certificates) through
//     AuthInfo.Unwrap;
//   - the dial-back connects lazily, on the first reverse call, and reports
//     the wrapped connection's security level to per-RPC credentials;
//   - the client handshake honours the context's deadline;
//   - the Registry lists its live peers and tells watchers when peers join
//     and leave;
//   - a client can take streams the server opens out of its backchannel
//     server by their first bytes (WithStreamHandshaker), which is how
//     package sidechannel receives Gitaly's sidechannels beside reverse
//     gRPC without dictating how that server is built;
//   - every field of Configuration may be left zero for its default;
//   - the client connection's Close returns the error the backchannel
//     server's Serve failed with, but not the error that only says the
//     connection had already closed (Gitaly returns that too).
//
// # Limits
//
// A peer's yamux pings are charged against a budget on both sides: at most
// PingBurst at once, PingsPerSecond after that, and PingBurst waiting for
// their answer. yamux answers every ping from a goroutine of its own, so
// without a bound a peer that floods pings and reads nothing spawns a
// goroutine per ping; a peer beyond the budget is dropped and the drop is
// logged as a warning. Neither Gitaly nor this package sends pings.
//
// grpc-go bounds how long a client may take to finish the handshake
// (grpc.ConnectionTimeout on the server). Servers that face untrusted
// peers should also set grpc.MaxConcurrentStreams, and clients the same on
// the server their ServerFactory returns: grpc-go's default is unlimited.
package backchannel
