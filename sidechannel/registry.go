package sidechannel

import (
	"context"
	"net"
	"sync"
)

// Registry is the client's table of pending sidechannels: one entry per
// call that may get a sidechannel, under an ID the call sends to the
// server. IDs start at 0 and grow by one per registration; each is used at
// most once. The server's stream is looked up here whichever connection it
// arrives on, so a process keeps one Registry for all its connections, as
// Gitaly's clients do. It is safe for concurrent use.
type Registry struct {
	mu      sync.Mutex
	nextID  int64             // guarded by mu
	waiters map[int64]*Waiter // guarded by mu
}

// NewRegistry returns an empty Registry.
func NewRegistry() *Registry {
	return &Registry{waiters: make(map[int64]*Waiter)}
}

// Register adds a pending sidechannel. When the server opens it, callback
// runs in a goroutine of its own with the stream, which is closed when
// callback returns. Send the Waiter's ID with the call (RegisterSidechannel
// does both) and Close the Waiter when the call has returned.
func (r *Registry) Register(callback func(*ClientConn) error) *Waiter {
	return r.register(nil, callback)
}

// Waiting returns the number of registered sidechannels the server has
// not opened yet.
func (r *Registry) Waiting() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.waiters)
}

func (r *Registry) register(ctx context.Context, callback func(*ClientConn) error) *Waiter {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := &Waiter{
		id:       r.nextID,
		registry: r,
		ctx:      ctx,
		callback: callback,
		done:     make(chan struct{}),
	}
	r.nextID++
	r.waiters[w.id] = w
	return w
}

// take removes and returns the waiter of id, if it is still pending.
func (r *Registry) take(id int64) (*Waiter, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	w, ok := r.waiters[id]
	delete(r.waiters, id)
	return w, ok
}

// Waiter is one pending sidechannel of a Registry.
type Waiter struct {
	id       int64
	registry *Registry
	// ctx, when set, bounds the sidechannel: when it ends, the stream is
	// closed (RegisterSidechannel).
	ctx      context.Context
	callback func(*ClientConn) error

	done chan struct{} // closed when the callback has returned or could not start
	err  error         // the callback's result; written before done is closed

	closeOnce sync.Once
	closeErr  error
}

// ID is the waiter's sidechannel ID, which the call sends in MetadataKey.
func (w *Waiter) ID() int64 { return w.id }

// Close removes the waiter from its Registry, so a late stream with its ID
// is refused, and returns the callback's error. If the callback is
// running, Close waits for it: a server closes the sidechannel before it
// answers the call, so after a call has returned the callback only has to
// read what is left. If the server never opened the sidechannel, Close
// returns ErrCallbackNotRun. Close may be called more than once.
func (w *Waiter) Close() error {
	w.closeOnce.Do(func() {
		if _, pending := w.registry.take(w.id); pending {
			w.closeErr = ErrCallbackNotRun
			return
		}
		<-w.done
		w.closeErr = w.err
	})
	return w.closeErr
}

// finish records the sidechannel's result.
func (w *Waiter) finish(err error) {
	w.err = err
	close(w.done)
}

// run hands the acknowledged stream to the callback and closes it after.
func (w *Waiter) run(conn net.Conn) {
	cc := newClientConn(conn)
	stop := func() bool { return false }
	if w.ctx != nil {
		stop = context.AfterFunc(w.ctx, func() { abort(conn) })
	}
	err := w.callback(cc)
	stop()
	conn.Close()
	w.finish(withCause(w.ctx, err))
}
