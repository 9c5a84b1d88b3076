package fanout

import (
	"context"
	"sync"
)

// Feed publishes values to every subscriber without waiting for any of
// them. The zero Feed is ready to use; a Feed must not be copied.
type Feed[T any] struct {
	mu     sync.Mutex
	subs   map[*Queue[T]]func(T) bool // each subscriber's Keep; guarded by mu
	closed bool                       // guarded by mu
}

// Options say what a subscription delivers.
type Options[T any] struct {
	// Backlog is delivered first, before the values published after
	// Subscribe.
	Backlog []T
	// BacklogOnly ends the subscription once the backlog is delivered,
	// without following later values.
	BacklogOnly bool
	// Keep selects the values to deliver (backlog and published alike);
	// nil keeps every value.
	Keep func(T) bool
	// Limit bounds how many values may wait for the subscriber; the
	// subscription ends with ErrOverflow when more would. 0: no bound.
	Limit int
	// OnEnd, when set, is called once the subscription has ended, before
	// its channel is closed.
	OnEnd func()
}

// Subscription delivers a Feed's values to one subscriber.
type Subscription[T any] struct {
	// C receives the values in the order they were published; it is
	// closed when the subscription ends.
	C <-chan T

	q *Queue[T]
}

// Err tells why the subscription ended once C is closed: ErrOverflow when
// values had to be dropped, else nil (the context ended, the Feed was
// closed, or the backlog was delivered under BacklogOnly).
func (s *Subscription[T]) Err() error { return s.q.Err() }

// Publish queues v for every subscriber. It never blocks.
//
// To hand out a snapshot that fits the values published after it (none
// missed, none repeated), take the snapshot and call Subscribe under the
// same lock under which the state changes and Publish is called.
func (f *Feed[T]) Publish(v T) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for q, keep := range f.subs {
		if keep(v) {
			q.Push(v)
		}
	}
}

// Subscribe starts a subscription that lasts until ctx ends, the Feed is
// closed and what was queued is delivered, or the subscription overflows.
// Its goroutine always ends: once ctx ends if the subscriber stops
// reading.
func (f *Feed[T]) Subscribe(ctx context.Context, opts Options[T]) *Subscription[T] {
	keep := opts.Keep
	if keep == nil {
		keep = func(T) bool { return true }
	}
	q := NewQueue[T](opts.Limit)
	for _, v := range opts.Backlog {
		if keep(v) {
			q.Push(v)
		}
	}
	f.mu.Lock()
	if opts.BacklogOnly || f.closed {
		q.Close()
	} else {
		if f.subs == nil {
			f.subs = map[*Queue[T]]func(T) bool{}
		}
		f.subs[q] = keep
	}
	f.mu.Unlock()

	out := make(chan T)
	go func() {
		defer close(out)
		q.Pump(ctx, out)
		f.mu.Lock()
		delete(f.subs, q)
		f.mu.Unlock()
		if opts.OnEnd != nil {
			opts.OnEnd()
		}
	}()
	return &Subscription[T]{C: out, q: q}
}

// Close ends every subscription once it has delivered what is queued for
// it; later subscriptions get only their backlog. Close may be called more
// than once.
func (f *Feed[T]) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for q := range f.subs {
		q.Close()
	}
}
