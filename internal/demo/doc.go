// Package demo is `bcctl demo`: the Gitaly/Praefect transaction vote played
// end to end in one process, over real loopback sockets, with the embedded
// schema corpus (internal/corpus) and embedded scripts. A bcctl serve (the
// upstream, Gitaly's role) answers gitaly.OperationService/UserCreateBranch;
// a multiplexed client (Praefect's role) calls it with Praefect's transaction
// metadata (gitaly-reference-transaction), and serve calls back into the
// client's backchannel to vote PREPARED then COMMITTED, with the decoded
// transaction id and node and a SHA-1 of the update, before it answers; then
// a plain gRPC client makes the same call and is answered without a vote.
// The transcript says what happened, step by step, with the journal serve
// wrote. serve runs under serve.Run, as `bcctl serve` does, with the flow
// in its foreground.
package demo
