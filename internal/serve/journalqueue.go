package serve

import (
	"sync"
	"time"
)

// JournalQueueLen is how many recorded events may wait for the journal
// sink, besides the batch it is writing (at most as many again). A call
// that records an event while they are all taken waits for room: a slow
// journal slows the calls down, it never loses an entry.
const JournalQueueLen = 4096

// JournalLinger is how long the entries written to a JournalFlusher may
// wait for more before they are flushed: under load the journal file gets
// one write for every JournalLinger of calls, not one for every call. A
// sync or the close flushes at once, and so does a queue half full.
const JournalLinger = time.Millisecond

// JournalFlusher is a JournalSink that buffers what it writes. Flush writes
// what it holds; the hub calls it at most JournalLinger after an entry was
// written, so entries reach the file soon after their calls end whatever
// follows, and at Close.
type JournalFlusher interface {
	JournalSink
	Flush() error
}

// journalQueue hands recorded events to the journal sink from a goroutine
// of its own, in the order they were recorded, so that a call does not wait
// for its entry to be rendered and written. The writer takes what has
// queued up in one batch, and is woken once per batch rather than once per
// event: recording an event costs a call a lock and an append. A sink that
// is a JournalFlusher is flushed once the writer has lingered for
// JournalLinger, or at once when asked to hurry (a sync, the close, a queue
// half full). Close writes what is queued; events recorded after Close are
// written in the recording goroutine.
type journalQueue struct {
	sink    JournalSink
	flusher JournalFlusher             // sink, when it is one
	failed  func(ev *Event, err error) // an entry (ev) or a flush (nil) failed
	limit   int                        // how many events may wait: JournalQueueLen
	linger  time.Duration              // JournalLinger
	wake    chan struct{}              // a token when there is work since the writer looked
	hurry   chan struct{}              // a token when the writer must flush without lingering
	done    chan struct{}              // closed when the writer goroutine has ended
	waiting func()                     // when set, called by a push that waits for room (tests)

	mu      sync.Mutex
	room    sync.Cond       // signalled when the writer takes a batch; L is &mu
	pending []*Event        // guarded by mu
	spare   []*Event        // the writer's last batch, for reuse; guarded by mu
	synced  []chan struct{} // closed once what was queued before is written; guarded by mu
	closed  bool            // guarded by mu

	late sync.Mutex // serializes the sink after Close
}

func newJournalQueue(sink JournalSink, failed func(*Event, error)) *journalQueue {
	return newJournalQueueLen(sink, failed, JournalQueueLen, JournalLinger, nil)
}

func newJournalQueueLen(sink JournalSink, failed func(*Event, error), limit int, linger time.Duration, waiting func()) *journalQueue {
	q := &journalQueue{
		sink: sink, failed: failed, limit: limit, linger: linger, waiting: waiting,
		wake: make(chan struct{}, 1), hurry: make(chan struct{}, 1), done: make(chan struct{}),
	}
	q.flusher, _ = sink.(JournalFlusher)
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
		signal(q.hurry)
		q.room.Wait()
	}
	if q.closed {
		q.mu.Unlock()
		q.writeLate(ev)
		return
	}
	q.pending = append(q.pending, ev)
	n := len(q.pending)
	q.mu.Unlock()
	switch n {
	case 1:
		signal(q.wake)
	case (q.limit + 1) / 2:
		signal(q.hurry)
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
	signal(q.wake)
	signal(q.hurry)
	<-synced
}

// close writes what is queued and stops the writer goroutine.
func (q *journalQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.room.Broadcast()
	q.mu.Unlock()
	signal(q.wake)
	signal(q.hurry)
	<-q.done
}

// signal leaves a token in c, unless one is there.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// run is the writer goroutine. It waits for work, writes what is queued,
// and, when that left entries unflushed, lingers (for more entries, or to
// be hurried), writes what came meanwhile and flushes everything at once.
func (q *journalQueue) run() {
	defer close(q.done)
	timer := time.NewTimer(q.linger)
	timer.Stop()
	for {
		select {
		case <-q.wake:
		case <-q.hurry:
		}
		unflushed, closed := q.writeBatch(false)
		if closed {
			return
		}
		if !unflushed {
			continue
		}
		timer.Reset(q.linger)
		select {
		case <-timer.C:
		case <-q.hurry:
			timer.Stop()
		}
		if _, closed := q.writeBatch(true); closed {
			return
		}
	}
}

// writeBatch takes what is queued and writes it, and flushes it when
// flush is set, or when a sync or the close asks for it; otherwise it says
// whether what it wrote is left unflushed. It tells whether the queue is
// closed (everything is written then).
func (q *journalQueue) writeBatch(flush bool) (unflushed, closed bool) {
	q.mu.Lock()
	batch, synced, closed := q.pending, q.synced, q.closed
	q.pending, q.spare, q.synced = q.spare[:0], nil, nil
	q.room.Broadcast()
	q.mu.Unlock()

	for _, ev := range batch {
		q.write(ev)
	}
	switch {
	case flush || len(synced) > 0 || closed:
		q.flush()
	case len(batch) > 0:
		unflushed = q.flusher != nil
	}
	for _, s := range synced {
		close(s)
	}
	clear(batch)
	q.mu.Lock()
	q.spare = batch
	q.mu.Unlock()
	return unflushed, closed
}

func (q *journalQueue) write(ev *Event) {
	if err := q.sink.WriteEvent(ev); err != nil {
		q.failed(ev, err)
	}
}

func (q *journalQueue) flush() {
	if q.flusher != nil {
		if err := q.flusher.Flush(); err != nil {
			q.failed(nil, err)
		}
	}
}
