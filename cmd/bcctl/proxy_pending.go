package main

import "sync"

// entryQueues hand what the proxy's watcher says about each client
// connection (its calls' entries, its side streams, its departure) to the
// journal and the printer in the order it happened, holding back what
// waits for the connection's backchannel schema, and what came after it,
// until that schema is known. The calls themselves never wait: only their
// entries do. With nothing held back, an entry goes out at once, in the
// goroutine that has it.
type entryQueues struct {
	// mu guards queues.
	mu     sync.Mutex
	queues map[uint64]*entryQueue // by client connection, while one holds entries back
	wg     sync.WaitGroup
}

// maxHeldEntries bounds the entries one connection may have held back:
// with that many waiting (a client that is slow to answer its reflection
// while it makes many calls), the rest are delivered without waiting, as
// they decode then.
const maxHeldEntries = 1024

// entryQueue is one connection's entries held back, oldest first.
type entryQueue struct {
	items []heldEntry
	// hurry is closed when the queue grew to maxHeldEntries (hurried):
	// nothing in it waits any longer.
	hurry   chan struct{}
	hurried bool
}

// heldEntry is an entry to deliver once wait is closed (nil: at once).
type heldEntry struct {
	wait    <-chan struct{}
	deliver func()
}

// add delivers an entry of connection conn once wait is closed (nil: now)
// and every earlier entry of conn has been delivered.
func (qs *entryQueues) add(conn uint64, wait <-chan struct{}, deliver func()) {
	qs.mu.Lock()
	q, held := qs.queues[conn]
	if !held {
		if closed(wait) {
			qs.mu.Unlock()
			deliver()
			return
		}
		if qs.queues == nil {
			qs.queues = map[uint64]*entryQueue{}
		}
		q = &entryQueue{hurry: make(chan struct{})}
		qs.queues[conn] = q
		qs.wg.Add(1)
		go qs.drain(conn, q)
	}
	q.items = append(q.items, heldEntry{wait: wait, deliver: deliver})
	if len(q.items) >= maxHeldEntries && !q.hurried {
		q.hurried = true
		close(q.hurry)
	}
	qs.mu.Unlock()
}

// drain delivers conn's held entries in order, each once it may go, until
// none is left.
func (qs *entryQueues) drain(conn uint64, q *entryQueue) {
	defer qs.wg.Done()
	for {
		qs.mu.Lock()
		if len(q.items) == 0 {
			delete(qs.queues, conn)
			qs.mu.Unlock()
			return
		}
		// The entry stays in the queue until it is delivered, so the
		// one being waited for counts toward maxHeldEntries too.
		it := q.items[0]
		qs.mu.Unlock()
		if it.wait != nil {
			select {
			case <-it.wait:
			case <-q.hurry:
			}
		}
		it.deliver()
		qs.mu.Lock()
		q.items = q.items[1:]
		qs.mu.Unlock()
	}
}

// flush returns once every entry held back has been delivered. The waits
// must end: the proxy's ClientSchemas bound them, and Close ends them.
func (qs *entryQueues) flush() { qs.wg.Wait() }

// closed reports whether ch is nil or closed.
func closed(ch <-chan struct{}) bool {
	if ch == nil {
		return true
	}
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
