package fanout

import (
	"context"
	"errors"
	"sync"
)

// ErrOverflow ends a bounded Queue whose consumer fell so far behind that
// the queue reached its limit: what was queued is dropped.
var ErrOverflow = errors.New("fanout: queue overflowed: the consumer fell behind")

// Queue is a first-in first-out queue with one consumer that producers
// never wait for. The zero Queue is not usable: use NewQueue.
type Queue[T any] struct {
	limit int
	// wake holds a token when values were pushed since the consumer last
	// looked; done is closed by Close.
	wake chan struct{}
	done chan struct{}

	mu     sync.Mutex
	items  []T   // guarded by mu
	closed bool  // guarded by mu
	err    error // guarded by mu
}

// NewQueue returns an empty queue. limit bounds how many values may wait:
// the push that would exceed it closes the queue with ErrOverflow and
// drops what is queued. A limit of 0 means no bound.
func NewQueue[T any](limit int) *Queue[T] {
	return &Queue[T]{limit: limit, wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// Push adds v to the queue and reports whether it was queued: false once
// the queue is closed. It never blocks.
func (q *Queue[T]) Push(v T) bool {
	q.mu.Lock()
	switch {
	case q.closed:
		q.mu.Unlock()
		return false
	case q.limit > 0 && len(q.items) >= q.limit:
		q.items, q.err = nil, ErrOverflow
		q.closeLocked()
		q.mu.Unlock()
		return false
	}
	q.items = append(q.items, v)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return true
}

// Close stops the queue: later pushes are dropped, and the consumer takes
// what is queued and then sees the end. Close may be called more than once.
func (q *Queue[T]) Close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closeLocked()
}

func (q *Queue[T]) closeLocked() {
	if !q.closed {
		q.closed = true
		close(q.done)
	}
}

// Done returns a channel that is closed when the queue is closed (by
// Close or by overflowing).
func (q *Queue[T]) Done() <-chan struct{} { return q.done }

// Err returns ErrOverflow once the queue has overflowed, else nil.
func (q *Queue[T]) Err() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.err
}

// Pop waits for the next value and returns it with true. It returns false
// once the queue is closed and empty, or when ctx ends. Only one goroutine
// may consume a queue (with Pop or Pump) at a time.
func (q *Queue[T]) Pop(ctx context.Context) (T, bool) {
	for {
		q.mu.Lock()
		if len(q.items) > 0 {
			v := q.items[0]
			var zero T
			q.items[0] = zero
			q.items = q.items[1:]
			q.mu.Unlock()
			return v, true
		}
		closed := q.closed
		q.mu.Unlock()
		if closed {
			var zero T
			return zero, false
		}
		select {
		case <-q.wake:
		case <-q.done:
		case <-ctx.Done():
			var zero T
			return zero, false
		}
	}
}

// Pump sends the queued values to out, in order, as the consumer takes
// them, until the queue is closed and empty or ctx ends. It does not close
// out.
func (q *Queue[T]) Pump(ctx context.Context, out chan<- T) {
	for {
		q.mu.Lock()
		batch, closed := q.items, q.closed
		q.items = nil
		q.mu.Unlock()
		for _, v := range batch {
			select {
			case out <- v:
			case <-ctx.Done():
				return
			}
		}
		switch {
		case len(batch) > 0:
			continue // look for more before waiting
		case closed:
			return
		}
		select {
		case <-q.wake:
		case <-q.done:
		case <-ctx.Done():
			return
		}
	}
}
