// Package mailbox carries messages from goroutines that do I/O (gRPC
// calls, watchers) to a bubbletea program: Put never blocks, and Next is a
// tea.Cmd that waits for the next message.
package mailbox

import (
	"context"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/bcctl/bcctl/internal/fanout"
)

// Box is an unbounded, ordered queue of tea.Msg with one reader.
type Box struct {
	q *fanout.Queue[tea.Msg]
}

// New returns an empty Box.
func New() *Box { return &Box{q: fanout.NewQueue[tea.Msg](0)} }

// Put adds msg. It never blocks; after Close it drops msg.
func (b *Box) Put(msg tea.Msg) { b.q.Push(msg) }

// Next returns a tea.Cmd that waits for the next message and returns it,
// or returns closed once the Box is closed and empty. Only one Next may
// wait at a time.
func (b *Box) Next(closed tea.Msg) tea.Cmd {
	return func() tea.Msg {
		if msg, ok := b.q.Pop(context.Background()); ok {
			return msg
		}
		return closed
	}
}

// Close stops the Box: messages already in it are still delivered, later
// ones are dropped, and a waiting Next returns once the Box is empty.
func (b *Box) Close() { b.q.Close() }

// Closed returns a channel that is closed by Close.
func (b *Box) Closed() <-chan struct{} { return b.q.Done() }
