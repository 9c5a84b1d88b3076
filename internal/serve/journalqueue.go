package serve

import "sync"

// JournalQueueLen is how many recorded events may wait for the journal
// sink, besides the batch it is writing (at most as many again). A call
// that records an event while they are all taken waits for room: a slow
// journal slows the calls down, it never loses an entry.
const JournalQueueLen = 4096

// JournalFlusher is a JournalSink that buffers what it writes. Flush writes
// what it holds; the hub calls it after every batch of events, so entries
// reach the file as soon as the calls let up, and at Close.
type JournalFlusher interface {
	JournalSink
	Flush() error
}

// journalQueue hands recorded events to the journal sink from a goroutine
// of its own, in the order they were recorded, so that a call does not wait
// for its entry to be rendered and written. The writer takes what has
// queued up in one batch, and is woken once per batch rather than once per
// event: recording an event costs a call a lock and an append. Close
// writes what is queued; events recorded after Close are written in the
// recording goroutine.
type journalQueue struct {
	sink   JournalSink
	failed func(ev *Event, err error) // an entry (ev) or a flush (nil) failed

	limit int           // how many events may wait: JournalQueueLen
	wake  chan struct{} // a token when there is work since the writer looked
	done  chan struct{} // closed when the writer goroutine has ended
	// waiting, when set, is called by a push that waits for room (tests).
	waiting func()

	mu      sync.Mutex
	room    sync.Cond       // signalled when the writer takes a batch; L is &mu
	pending []*Event        // guarded by mu
	spare   []*Event        // the writer's last batch, for reuse; guarded by mu
	synced  []chan struct{} // closed once what was queued before is written; guarded by mu
	closed  bool            // guarded by mu

	late sync.Mutex // serializes the sink after Close
}

func newJournalQueue(sink JournalSink, failed func(*Event, error)) *journalQueue {
	return newJournalQueueLen(sink, failed, JournalQueueLen, nil)
}

func newJournalQueueLen(sink JournalSink, failed func(*Event, error), limit int, waiting func()) *journalQueue {
	q := &journalQueue{sink: sink, failed: failed, limit: limit, waiting: waiting, wake: make(chan struct{}, 1), done: make(chan struct{})}
	q.room.L = &q.mu
	go q.run()
	return q
}

// push queues ev, waiting for room while the queue is full.
func (q *journalQueue) push(ev *Event) {
	q.mu.Lock()
	for !q.closed && len(q.pending) >= q.limit {
		if q.waiting != nil {
			q.waiting()
		}
		q.room.Wait()
	}
	if q.closed {
		q.mu.Unlock()
		q.writeLate(ev)
		return
	}
	q.pending = append(q.pending, ev)
	first := len(q.pending) == 1
	q.mu.Unlock()
	if first {
		q.signal()
	}
}

// writeLate writes an event recorded after Close, once the writer has
// written everything before it.
func (q *journalQueue) writeLate(ev *Event) {
	<-q.done
	q.late.Lock()
	defer q.late.Unlock()
	q.write(ev)
	q.flush()
}

// sync returns once every event queued before it has been written and
// flushed.
func (q *journalQueue) sync() {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		<-q.done
		return
	}
	synced := make(chan struct{})
	q.synced = append(q.synced, synced)
	q.mu.Unlock()
	q.signal()
	<-synced
}

// close writes what is queued and stops the writer goroutine.
func (q *journalQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.room.Broadcast()
	q.mu.Unlock()
	q.signal()
	<-q.done
}

func (q *journalQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *journalQueue) run() {
	defer close(q.done)
	for range q.wake {
		for {
			q.mu.Lock()
			batch, synced, closed := q.pending, q.synced, q.closed
			q.pending, q.spare, q.synced = q.spare[:0], nil, nil
			q.room.Broadcast()
			q.mu.Unlock()

			for _, ev := range batch {
				q.write(ev)
			}
			if len(batch) > 0 || len(synced) > 0 {
				q.flush()
			}
			for _, s := range synced {
				close(s)
			}
			clear(batch)
			q.mu.Lock()
			q.spare = batch
			more := len(q.pending) > 0 || len(q.synced) > 0
			q.mu.Unlock()
			switch {
			case more:
				continue
			case closed:
				return
			}
			break
		}
	}
}

func (q *journalQueue) write(ev *Event) {
	if err := q.sink.WriteEvent(ev); err != nil {
		q.failed(ev, err)
	}
}

func (q *journalQueue) flush() {
	if f, ok := q.sink.(JournalFlusher); ok {
		if err := f.Flush(); err != nil {
			q.failed(nil, err)
		}
	}
}
