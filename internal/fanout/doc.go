// Package fanout delivers values from producers that must never wait to
// consumers that may be slow: the journal's subscribers, the watchers of
// serve's peer table, the TUI's journal feed and mailboxes.
//
// A Queue is an unbounded (or bounded, see NewQueue) first-in first-out
// queue with one consumer. Push never blocks; the consumer takes values
// with Pop, or lets Pump send them to a channel. Close lets the consumer
// take what is queued and then ends it.
//
// A Feed publishes each value to every subscriber, each with a Queue of
// its own and a goroutine that pumps it into the subscriber's channel:
// a slow subscriber never stalls Publish or the other subscribers, and
// each sees the values in the order they were published. A subscription
// ends when its context ends, when the Feed is closed and the subscription
// has delivered what was queued, or when it overflows its limit.
//
// The public backchannel package keeps a private copy of this design for
// Registry.Watch, because public packages import nothing from internal/.
package fanout
