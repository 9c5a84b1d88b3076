package mailbox

import (
	"testing"
	"testing/synctest"

	tea "github.com/charmbracelet/bubbletea"
)

type closed struct{}

// next runs b.Next in a goroutine, as bubbletea runs a Cmd, and waits for
// its message.
func next(b *Box) tea.Msg {
	ch := make(chan tea.Msg, 1)
	go func() { ch <- b.Next(closed{})() }()
	return <-ch
}

func TestOrderAndClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := New()
		for i := 0; i < 100; i++ {
			b.Put(i)
		}
		for want := 0; want < 100; want++ {
			if got := next(b); got != want {
				t.Fatalf("got %v, want %d", got, want)
			}
		}
		// A waiting Next is woken by a later Put: synctest.Wait returns
		// once the Cmd's goroutine is blocked in Next.
		got := make(chan tea.Msg, 1)
		go func() { got <- b.Next(closed{})() }()
		synctest.Wait()
		select {
		case m := <-got:
			t.Fatalf("Next returned %v from an empty Box", m)
		default:
		}
		b.Put("late")
		if m := <-got; m != "late" {
			t.Fatalf("got %v, want late", m)
		}
		b.Put("before close")
		b.Close()
		b.Put("after close")
		if got := next(b); got != "before close" {
			t.Errorf("got %v, want the message put before Close", got)
		}
		if _, ok := next(b).(closed); !ok {
			t.Error("Next after Close and the last message should return closed")
		}
		select {
		case <-b.Closed():
		default:
			t.Error("Closed() is not closed")
		}
	})
}
