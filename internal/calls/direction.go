package calls

// Direction says which way a call went: forward calls go to the upstream
// (bcctl serve, or the server bcctl call dials), reverse calls go into a
// peer's backchannel.
type Direction int

// Directions of calls.
const (
	// Forward is a call from a client to its upstream.
	Forward Direction = iota + 1
	// Reverse is a call from the upstream into a client's backchannel.
	Reverse
)

// String returns "forward" or "reverse" ("any" for the zero Direction).
func (d Direction) String() string {
	switch d {
	case Forward:
		return "forward"
	case Reverse:
		return "reverse"
	}
	return "any"
}

// MarshalText writes the direction's name.
func (d Direction) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Origin says whether bcctl answered a call or made it.
type Origin int

// Origins of calls.
const (
	// Answered: a peer called and a rule (or nobody) answered.
	Answered Origin = iota + 1
	// Made: a `call` step invoked a method on the other side.
	Made
)

// String returns "answered" or "made".
func (o Origin) String() string {
	if o == Made {
		return "made"
	}
	return "answered"
}
