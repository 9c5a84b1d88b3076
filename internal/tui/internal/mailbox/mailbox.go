// Package mailbox carries messages from goroutines that do I/O (gRPC
// calls, watchers) to a bubbletea program: Put never blocks, and Next is a
// tea.Cmd that waits for the next message.
package mailbox

import (
	"sync"

	tea "github.com/charmbracelet/bubbletea"
)

// Box is an unbounded, ordered queue of tea.Msg with one reader.
type Box struct {
	mu     sync.Mutex
	queue  []tea.Msg
	signal chan struct{}
	closed bool
	done   chan struct{}
}

// New returns an empty Box.
func New() *Box {
	return &Box{signal: make(chan struct{}, 1), done: make(chan struct{})}
}

// Put adds msg. It never blocks; after Close it drops msg.
func (b *Box) Put(msg tea.Msg) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.queue = append(b.queue, msg)
	b.mu.Unlock()
	select {
	case b.signal <- struct{}{}:
	default:
	}
}

// Next returns a tea.Cmd that waits for the next message and returns it,
// or returns closed once the Box is closed and empty. Only one Next may
// wait at a time.
func (b *Box) Next(closed tea.Msg) tea.Cmd {
	return func() tea.Msg {
		for {
			b.mu.Lock()
			if len(b.queue) > 0 {
				msg := b.queue[0]
				b.queue[0] = nil
				b.queue = b.queue[1:]
				b.mu.Unlock()
				return msg
			}
			isClosed := b.closed
			b.mu.Unlock()
			if isClosed {
				return closed
			}
			select {
			case <-b.signal:
			case <-b.done:
			}
		}
	}
}

// Close stops the Box: messages already in it are still delivered, later
// ones are dropped, and a waiting Next returns once the Box is empty.
func (b *Box) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		b.closed = true
		close(b.done)
	}
}

// Closed returns a channel that is closed by Close.
func (b *Box) Closed() <-chan struct{} { return b.done }
