package calls

// Peer describes who is on the other end of a call: who made a call that
// bcctl answers, or whom bcctl called.
type Peer struct {
	// Addr is the remote address of the connection, "" when unknown.
	Addr string
	// BackchannelID is the peer's backchannel ID, 0 when the call did not
	// go over a multiplexed connection.
	BackchannelID uint64
}
