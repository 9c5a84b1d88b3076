package main

import (
	"slices"
	"sync"
	"testing"
)

// TestEntryQueues: a connection's entries go out in the order they came,
// at once while none waits; one that waits holds back those after it
// (never those of other connections) until its wait ends, or until too
// many are held.
func TestEntryQueues(t *testing.T) {
	var qs entryQueues
	var mu sync.Mutex
	var got []string
	deliver := func(s string) func() {
		return func() {
			mu.Lock()
			got = append(got, s)
			mu.Unlock()
		}
	}
	delivered := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}

	qs.add(1, nil, deliver("1a"))
	if d := delivered(); !slices.Equal(d, []string{"1a"}) {
		t.Fatalf("nothing held: delivered %v, want 1a at once", d)
	}
	schema := make(chan struct{})
	qs.add(1, schema, deliver("1b (waits)"))
	qs.add(1, nil, deliver("1c"))
	qs.add(2, nil, deliver("2a"))
	if d := delivered(); !slices.Equal(d, []string{"1a", "2a"}) {
		t.Fatalf("while 1b waits: delivered %v, want 1a and connection 2's 2a only", d)
	}
	close(schema)
	qs.flush()
	if d := delivered(); !slices.Equal(d, []string{"1a", "2a", "1b (waits)", "1c"}) {
		t.Fatalf("after the wait: delivered %v, want 1b then 1c", d)
	}

	// A wait that never ends holds back at most maxHeldEntries entries.
	got = nil
	never := make(chan struct{})
	for range maxHeldEntries {
		qs.add(3, never, deliver("3"))
	}
	qs.flush()
	if n := len(delivered()); n != maxHeldEntries {
		t.Fatalf("delivered %d entries, want all %d once the queue was full", n, maxHeldEntries)
	}
}
