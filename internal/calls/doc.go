// Package calls is the vocabulary bcctl uses to talk about a call once it
// has happened: which way it went (Direction), whether bcctl answered or
// made it (Origin), who was on the other end (Peer), what rule was
// involved (RuleRef, Pos), how it ended (CodeName, ParseCode), and the
// finished-call Event that observers receive.
//
// The rule language (internal/script) produces Events; the journal, the
// hosted backchannel, the mock upstream, the admin API and the TUI consume
// them. None of those needs the rule language to do so: this package is a
// leaf that imports only the standard library, grpc and protobuf.
package calls
