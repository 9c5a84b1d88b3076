package serve

import (
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/bcctl/bcctl/internal/calls"
)

// gatedSink records the IDs of the events it is given, once gate is open;
// entered hears of each event as it arrives.
type gatedSink struct {
	gate    chan struct{}
	entered chan uint64
	mu      sync.Mutex
	ids     []uint64
	flushes int
}

func newGatedSink() *gatedSink {
	return &gatedSink{gate: make(chan struct{}), entered: make(chan uint64, 1024)}
}

func (s *gatedSink) WriteEvent(ev *Event) error {
	s.entered <- ev.ID
	<-s.gate
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ids = append(s.ids, ev.ID)
	return nil
}

func (s *gatedSink) Flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flushes++
	return nil
}

func (s *gatedSink) written() ([]uint64, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]uint64(nil), s.ids...), s.flushes
}

func queueEvent(id uint64) *Event { return &Event{ID: id, Call: &calls.Event{}} }

// TestJournalQueueBackPressure stalls the sink: the queue takes its limit
// besides the batch the writer is stuck in, the next event waits for room
// instead of being dropped or growing the queue, and once the sink moves
// every event is written, in order, and flushed; an event recorded after
// close is written too.
func TestJournalQueueBackPressure(t *testing.T) {
	const limit = 4
	sink := newGatedSink()
	waiting := make(chan struct{}, 1)
	q := newJournalQueueLen(sink, func(*Event, error) { t.Error("the sink failed") }, limit, JournalLinger, func() {
		select {
		case waiting <- struct{}{}:
		default:
		}
	})

	q.push(queueEvent(1))
	<-sink.entered // the writer took event 1 and is stuck in the sink
	for id := uint64(2); id < 2+limit; id++ {
		q.push(queueEvent(id)) // room for limit events: no wait
	}
	blocked := make(chan struct{})
	go func() {
		defer close(blocked)
		q.push(queueEvent(2 + limit))
	}()
	<-waiting // the push beyond the limit waits for room
	select {
	case <-blocked:
		t.Fatal("a push beyond the limit returned while the sink was stuck")
	default:
	}

	close(sink.gate)
	<-blocked
	q.sync()
	want := []uint64{1, 2, 3, 4, 5, 6}
	if ids, flushes := sink.written(); !slices.Equal(ids, want) || flushes == 0 {
		t.Errorf("written %v with %d flushes, want %v and a flush", ids, flushes, want)
	}

	q.close()
	q.push(queueEvent(7))
	if ids, _ := sink.written(); !slices.Equal(ids, append(want, 7)) {
		t.Errorf("after close: written %v, want %v", ids, append(want, 7))
	}
}

// TestJournalQueueKeepsOrderUnderLoad pushes from many goroutines at once:
// every event is written once, and each goroutine's events in the order it
// pushed them.
func TestJournalQueueKeepsOrderUnderLoad(t *testing.T) {
	const pushers, each = 16, 500
	sink := newGatedSink()
	close(sink.gate)
	sink.entered = make(chan uint64, pushers*each)
	q := newJournalQueueLen(sink, func(*Event, error) { t.Error("the sink failed") }, 8, JournalLinger, nil)
	var wg sync.WaitGroup
	for p := range pushers {
		wg.Go(func() {
			for i := range each {
				q.push(queueEvent(uint64(p*each + i + 1)))
			}
		})
	}
	wg.Wait()
	q.close()
	ids, _ := sink.written()
	if len(ids) != pushers*each {
		t.Fatalf("%d events written, want %d", len(ids), pushers*each)
	}
	last := make([]uint64, pushers)
	for _, id := range ids {
		p := (id - 1) / each
		if id <= last[p] {
			t.Fatalf("event %d written after event %d of the same goroutine", id, last[p])
		}
		last[p] = id
	}
}

// flushSink is a JournalFlusher that reports each flush with how many
// events it had been given by then. When held is set, event 1 tells held
// it arrived and waits for release.
type flushSink struct {
	held, release chan struct{}
	mu            sync.Mutex
	written       int
	flushed       chan int
}

func (s *flushSink) WriteEvent(ev *Event) error {
	if s.held != nil && ev.ID == 1 {
		s.held <- struct{}{}
		<-s.release
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.written++
	return nil
}

func (s *flushSink) Flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flushed <- s.written
	return nil
}

// TestJournalQueueFlushesWhenIdle writes one event and neither syncs nor
// closes: the writer flushes it by itself once it has lingered, so that a
// reader that follows the journal file gets it.
func TestJournalQueueFlushesWhenIdle(t *testing.T) {
	baseline := goleak.IgnoreCurrent()
	ctx := testContext(t)
	sink := &flushSink{flushed: make(chan int, 16)}
	q := newJournalQueue(sink, func(*Event, error) { t.Error("the sink failed") })
	q.push(queueEvent(1))
	select {
	case n := <-sink.flushed:
		if n != 1 {
			t.Errorf("flushed after %d events, want 1", n)
		}
	case <-ctx.Done():
		t.Fatal("the event was never flushed")
	}
	q.close()
	if err := goleak.Find(baseline); err != nil {
		t.Errorf("after close: %v", err)
	}
}

// TestJournalQueueHurriesWhenHalfFull lingers for an hour: events queued up
// to half the queue's length are not flushed, the one that fills half of
// it gets everything flushed at once, without a sync.
func TestJournalQueueHurriesWhenHalfFull(t *testing.T) {
	const limit = 8
	ctx := testContext(t)
	sink := &flushSink{flushed: make(chan int, 16), held: make(chan struct{}), release: make(chan struct{})}
	// The writer takes event 1 and is held in the sink, so that the
	// others queue up behind it.
	q := newJournalQueueLen(sink, func(*Event, error) { t.Error("the sink failed") }, limit, time.Hour, nil)
	q.push(queueEvent(1))
	<-sink.held
	for id := uint64(2); id <= limit/2; id++ {
		q.push(queueEvent(id))
	}
	close(sink.release)
	select {
	case n := <-sink.flushed:
		t.Fatalf("flushed after %d events, before half the queue was taken", n)
	default:
	}
	q.push(queueEvent(limit/2 + 1))
	select {
	case n := <-sink.flushed:
		if n < 2 {
			t.Errorf("flushed after %d events, want those queued too", n)
		}
	case <-ctx.Done():
		t.Fatal("a queue half full was not flushed")
	}
	q.close()
	if n := <-sink.flushed; n != limit/2+1 {
		t.Errorf("closed after %d events, want %d", n, limit/2+1)
	}
}
