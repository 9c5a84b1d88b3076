// Package serve is the engine of `bcctl serve`: a scriptable mock upstream
// that answers forward calls, calls back into the backchannels of its
// peers, keeps a live registry of them and records a journal.
//
// A Server puts a listenmux with the backchannel handshaker in front of one
// gRPC server, so multiplexed peers (Praefect's role) and plain gRPC clients
// share a port. Every service of the schema is answered by a script.Engine;
// server reflection and health are served for the same schema, so grpcurl
// and any plain gRPC client can list, describe and call a running serve.
//
// The script's `call` steps reach peers through the Server, which is the
// engine's script.Caller: the calling peer, a peer by ID, or every peer.
// A peer ID is always the one the handshake assigned; nothing a client
// sends can choose whom serve calls.
//
// What the Server offers to the commands built on it (the admin API, the
// TUI) is its Hub's, which a Server embeds:
//
//   - the live registry: Peers, Peer and WatchPeers, a snapshot and a
//     stream of changes (joins, leaves, services discovered by reflection
//     over a peer's backchannel, on_connect results); call counters are
//     read from the snapshot;
//   - the journal: every finished call, answered or made, as an Event with
//     a journal ID and, for a reverse call, the ID of the forward call that
//     caused it; Subscribe streams them (the recent past, then live), and
//     Config.Journal receives each one before the call's status reaches
//     the caller;
//   - reverse calls on demand: CallPeer invokes any method on a chosen
//     peer's backchannel with JSON in and out, journaled like the script's;
//   - Reload, Check and a stop request after a number of calls (the
//     Server's own).
//
// # The Hub: one registry and journal for serve and proxy
//
// A Hub is those first three without the gRPC server that answers: it
// follows any backchannel.Registry. bcctl proxy builds one over the
// registry of the clients it relays for (whose backchannels it can call
// too), numbers its calls with NextID as they start and records them with
// Add (EventOf wraps an entry the proxy rendered itself), so the admin
// API, `bcctl peers` and the TUI show a proxy as they show a serve.
//
// # Running: Run
//
// Run is the lifecycle of `bcctl serve` and `bcctl demo`, and of any
// command that serves the same way (`bcctl proxy`). It is the one owner of
// everything a run starts: it opens the listeners (all of them before any
// serves), serves the Service on each, serves an admin gRPC server on its
// own listener, runs the Followers (printers, which see the Service from
// before it serves until after it has shut down), the Background work
// (a script watch) and the Foreground (a terminal UI, the demo's flow).
// It stops when the context ends (SIGINT and SIGTERM in bcctl),
// RunConfig.MaxTime passes, the Service asks (StopRequester: a *Server
// after Config.MaxCalls calls), a listener fails or the Foreground
// returns, and says which with a StopReason. Stopping happens in one
// place: the Service shuts down with a grace for calls in flight, the
// admin server stops, every listener is closed and every goroutine is
// waited for, on every path, a listener that does not open included.
//
// The Service is an interface (Serve a listener until Shutdown; Shutdown
// returns once every handler has returned), so a proxy plugs its own gRPC
// server in: it builds that server around its own journal sink, registry
// and script engine, gives Run its listeners, its admin server
// (AdminConfig.New builds it once the listeners' addresses are known) and
// its UI, and branches on Stopped.Reason as bcctl serve does. The journal
// stays the caller's: open the file journal before the Service, hand the
// Service its sink, and close it after Run returns, when Shutdown has
// delivered every event.
package serve
