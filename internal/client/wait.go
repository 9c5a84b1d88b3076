package client

import "context"

// WaitEnd says how WaitReverse ended.
type WaitEnd int

// How WaitReverse ends.
const (
	// WaitReached: the reverse calls waited for have been answered.
	WaitReached WaitEnd = iota + 1
	// WaitLost: the server closed the connection first.
	WaitLost
	// WaitCanceled: ctx ended first.
	WaitCanceled
)

// String names the end.
func (e WaitEnd) String() string {
	switch e {
	case WaitReached:
		return "reached"
	case WaitLost:
		return "lost"
	case WaitCanceled:
		return "canceled"
	}
	return "WaitEnd(?)"
}

// WaitReverse keeps the session for reverse calls until n of them have
// been answered since it was opened, the server closes the connection, or
// ctx ends. With n 0 it waits for the latter two only.
func (s *Session) WaitReverse(ctx context.Context, n int) WaitEnd {
	lost := s.conn.Lost()
	if n > 0 {
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() { // ends with wctx, at the latest when WaitReverse returns
			select {
			case <-lost:
				cancel()
			case <-wctx.Done():
			}
		}()
		if s.conn.WaitReverseCalls(wctx, n) == nil || s.conn.ReverseCalls() >= n {
			return WaitReached
		}
	} else {
		select {
		case <-ctx.Done():
		case <-lost:
		}
	}
	select {
	case <-lost:
		if ctx.Err() == nil {
			return WaitLost
		}
	default:
	}
	return WaitCanceled
}
