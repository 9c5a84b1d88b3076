package fanout_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"

	"github.com/bcctl/bcctl/internal/fanout"
)

func TestQueueKeepsOrder(t *testing.T) {
	q := fanout.NewQueue[int](0)
	for i := range 1000 {
		if !q.Push(i) {
			t.Fatalf("Push(%d) = false on an open queue", i)
		}
	}
	for want := range 1000 {
		if got, ok := q.Pop(t.Context()); !ok || got != want {
			t.Fatalf("Pop = %d, %v; want %d, true", got, ok, want)
		}
	}
}

func TestPopWaitsForPush(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := fanout.NewQueue[string](0)
		got := make(chan string, 1)
		go func() {
			v, _ := q.Pop(t.Context())
			got <- v
		}()
		synctest.Wait() // Pop is now blocked on the empty queue
		select {
		case v := <-got:
			t.Fatalf("Pop returned %q from an empty queue", v)
		default:
		}
		q.Push("late")
		if v := <-got; v != "late" {
			t.Errorf("Pop = %q, want late", v)
		}
	})
}

func TestCloseDeliversWhatIsQueued(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := fanout.NewQueue[string](0)
		q.Push("before close")
		q.Close()
		q.Close() // a second Close is harmless
		if q.Push("after close") {
			t.Error("Push after Close = true, want false")
		}
		if v, ok := q.Pop(t.Context()); !ok || v != "before close" {
			t.Errorf("Pop = %q, %v; want the value pushed before Close", v, ok)
		}
		if v, ok := q.Pop(t.Context()); ok {
			t.Errorf("Pop after the last value = %q, true; want the end", v)
		}
		select {
		case <-q.Done():
		default:
			t.Error("Done() is not closed after Close")
		}
		if err := q.Err(); err != nil {
			t.Errorf("Err() = %v after Close, want nil", err)
		}

		// A Pop that waits is ended by Close.
		q2 := fanout.NewQueue[int](0)
		ended := make(chan bool, 1)
		go func() {
			_, ok := q2.Pop(t.Context())
			ended <- ok
		}()
		synctest.Wait()
		q2.Close()
		if ok := <-ended; ok {
			t.Error("a waiting Pop returned a value after Close of an empty queue")
		}
	})
}

func TestPopEndsWithContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := fanout.NewQueue[int](0)
		ctx, cancel := context.WithCancel(t.Context())
		ended := make(chan bool, 1)
		go func() {
			_, ok := q.Pop(ctx)
			ended <- ok
		}()
		synctest.Wait()
		cancel()
		if ok := <-ended; ok {
			t.Error("Pop returned a value after its context ended")
		}
	})
}

func TestQueueOverflow(t *testing.T) {
	q := fanout.NewQueue[int](3)
	for i := range 3 {
		if !q.Push(i) {
			t.Fatalf("Push(%d) = false below the limit", i)
		}
	}
	if q.Push(3) {
		t.Fatal("Push beyond the limit = true, want false")
	}
	if err := q.Err(); !errors.Is(err, fanout.ErrOverflow) {
		t.Errorf("Err() = %v, want ErrOverflow", err)
	}
	if v, ok := q.Pop(t.Context()); ok {
		t.Errorf("Pop after overflow = %d, true; want the queue dropped", v)
	}
}

func TestPumpDeliversInOrderAndEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := fanout.NewQueue[int](0)
		out := make(chan int)
		pumped := make(chan struct{})
		go func() {
			defer close(pumped)
			q.Pump(t.Context(), out)
		}()
		for i := range 10 {
			q.Push(i)
		}
		for want := range 10 {
			if got := <-out; got != want {
				t.Fatalf("got %d, want %d", got, want)
			}
		}
		q.Push(10)
		q.Close()
		if got := <-out; got != 10 {
			t.Fatalf("got %d, want 10 (queued before Close)", got)
		}
		<-pumped
	})
}

func TestPumpEndsWithContextWhenNobodyReads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := fanout.NewQueue[int](0)
		q.Push(1)
		ctx, cancel := context.WithCancel(t.Context())
		pumped := make(chan struct{})
		go func() {
			defer close(pumped)
			q.Pump(ctx, make(chan int)) // nobody reads
		}()
		synctest.Wait()
		cancel()
		<-pumped
	})
}
