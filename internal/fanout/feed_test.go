package fanout_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/bcctl/bcctl/internal/fanout"
)

// collect reads the subscription until it ends.
func collect[T any](s *fanout.Subscription[T]) []T {
	var got []T
	for v := range s.C {
		got = append(got, v)
	}
	return got
}

func equal[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestSlowSubscriberStallsNobody(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var f fanout.Feed[int]
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		stalled := f.Subscribe(ctx, fanout.Options[int]{}) // never read until the end
		fast := f.Subscribe(ctx, fanout.Options[int]{})
		const n = 10_000
		got := make(chan []int, 1)
		go func() {
			var vs []int
			for v := range fast.C {
				vs = append(vs, v)
				if len(vs) == n {
					break
				}
			}
			got <- vs
		}()
		for i := range n {
			f.Publish(i) // never waits, though stalled reads nothing
		}
		vs := <-got
		for i, v := range vs {
			if v != i {
				t.Fatalf("fast subscriber: value %d is %d, out of order", i, v)
			}
		}
		// The stalled subscriber still gets everything, in order.
		f.Close()
		if vs := collect(stalled); len(vs) != n || vs[0] != 0 || vs[n-1] != n-1 {
			t.Errorf("stalled subscriber got %d values, want %d in order", len(vs), n)
		}
	})
}

func TestFeedOptions(t *testing.T) {
	even := func(v int) bool { return v%2 == 0 }
	tests := []struct {
		name     string
		opts     fanout.Options[int]
		publish  []int
		want     []int
		wantErr  error
		closeFed bool
	}{
		{name: "live", publish: []int{1, 2, 3}, want: []int{1, 2, 3}},
		{name: "backlog first", opts: fanout.Options[int]{Backlog: []int{-2, -1}}, publish: []int{1}, want: []int{-2, -1, 1}},
		{name: "keep filters both", opts: fanout.Options[int]{Backlog: []int{-2, -1}, Keep: even}, publish: []int{1, 2, 3, 4}, want: []int{-2, 2, 4}},
		{name: "backlog only", opts: fanout.Options[int]{Backlog: []int{7}, BacklogOnly: true}, publish: []int{1}, want: []int{7}},
		{name: "overflow", opts: fanout.Options[int]{Limit: 2}, publish: []int{1, 2, 3}, want: nil, wantErr: fanout.ErrOverflow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var f fanout.Feed[int]
				ended := false
				tt.opts.OnEnd = func() { ended = true }
				s := f.Subscribe(t.Context(), tt.opts)
				synctest.Wait() // the subscriber is idle: values queue up unread
				for _, v := range tt.publish {
					f.Publish(v)
				}
				f.Close()
				got := collect(s)
				if !equal(got, tt.want) {
					t.Errorf("got %v, want %v", got, tt.want)
				}
				if err := s.Err(); !errors.Is(err, tt.wantErr) {
					t.Errorf("Err() = %v, want %v", err, tt.wantErr)
				}
				if !ended {
					t.Error("OnEnd was not called before C was closed")
				}
			})
		})
	}
}

func TestSubscribeAfterCloseGetsOnlyTheBacklog(t *testing.T) {
	var f fanout.Feed[string]
	f.Close()
	s := f.Subscribe(t.Context(), fanout.Options[string]{Backlog: []string{"kept"}})
	f.Publish("late")
	if got := collect(s); !equal(got, []string{"kept"}) {
		t.Errorf("got %v, want [kept]", got)
	}
}

func TestSubscriptionEndsWithContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var f fanout.Feed[int]
		ctx, cancel := context.WithCancel(t.Context())
		s := f.Subscribe(ctx, fanout.Options[int]{})
		f.Publish(1) // queued, never read
		synctest.Wait()
		cancel()
		for range s.C {
		}
		if err := s.Err(); err != nil {
			t.Errorf("Err() = %v after the context ended, want nil", err)
		}
	})
}

// TestConcurrentPublishers runs under -race: each producer's values arrive
// in the order it published them.
func TestConcurrentPublishers(t *testing.T) {
	type msg struct{ from, seq int }
	var f fanout.Feed[msg]
	const producers, each = 8, 500
	s := f.Subscribe(t.Context(), fanout.Options[msg]{})
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			for i := range each {
				f.Publish(msg{p, i})
			}
		})
	}
	go func() { wg.Wait(); f.Close() }()
	next := make([]int, producers)
	n := 0
	for m := range s.C {
		if m.seq != next[m.from] {
			t.Fatalf("producer %d: got seq %d, want %d", m.from, m.seq, next[m.from])
		}
		next[m.from]++
		n++
	}
	if n != producers*each {
		t.Errorf("got %d values, want %d", n, producers*each)
	}
}

func ExampleFeed() {
	var f fanout.Feed[string]
	s := f.Subscribe(context.Background(), fanout.Options[string]{Backlog: []string{"peer 1 joined"}})
	f.Publish("peer 2 joined")
	f.Publish("peer 1 left")
	f.Close()
	for ev := range s.C {
		fmt.Println(ev)
	}
	// Output:
	// peer 1 joined
	// peer 2 joined
	// peer 1 left
}
