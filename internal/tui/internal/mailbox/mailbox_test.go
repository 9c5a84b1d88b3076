package mailbox

import (
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
)

type closed struct{}

func next(t *testing.T, b *Box) tea.Msg {
	t.Helper()
	ch := make(chan tea.Msg, 1)
	go func() { ch <- b.Next(closed{})() }()
	select {
	case m := <-ch:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("Next did not return")
		return nil
	}
}

func TestOrderAndClose(t *testing.T) {
	b := New()
	for i := 0; i < 100; i++ {
		b.Put(i)
	}
	for want := 0; want < 100; want++ {
		if got := next(t, b); got != want {
			t.Fatalf("got %v, want %d", got, want)
		}
	}
	// A waiting Next is woken by a later Put.
	go func() { b.Put("late") }()
	if got := next(t, b); got != "late" {
		t.Fatalf("got %v, want late", got)
	}
	b.Put("before close")
	b.Close()
	b.Put("after close")
	if got := next(t, b); got != "before close" {
		t.Errorf("got %v, want the message put before Close", got)
	}
	if _, ok := next(t, b).(closed); !ok {
		t.Error("Next after Close and the last message should return closed")
	}
	select {
	case <-b.Closed():
	default:
		t.Error("Closed() is not closed")
	}
}
