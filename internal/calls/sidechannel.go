package calls

import "time"

// Sidechannel is what went through the sidechannel of a call: Gitaly's raw
// stream beside the call (package sidechannel). The body is what the
// client sent, the response what the server sent back, whichever side
// bcctl played.
type Sidechannel struct {
	// ID is the sidechannel ID the call carried.
	ID int64
	// BodyBytes and BodySHA256 (hex) describe the client's body;
	// ResponseBytes and ResponseSHA256 the server's response.
	BodyBytes      int64
	BodySHA256     string
	ResponseBytes  int64
	ResponseSHA256 string
	// Duration is how long the sidechannel was open.
	Duration time.Duration
	// Fault is the failure a script injected on purpose, "" for none.
	Fault string
	// Err says how the sidechannel failed, "" when it did not.
	Err string
}
