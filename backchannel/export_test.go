package backchannel

// WithoutPingGuard returns ch without the ping guard, so that a benchmark
// can measure what the guard costs.
func WithoutPingGuard(ch ClientHandshaker) ClientHandshaker {
	ch.unguarded = true
	return ch
}

// ServerWithoutPingGuard leaves the ping guard out of the server side, so
// that a benchmark can measure what the guard costs.
func ServerWithoutPingGuard() ServerHandshakerOption {
	return func(s *ServerHandshaker) { s.unguarded = true }
}
