package journal

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/dynamic"
)

// Options configure a Writer.
type Options struct {
	// Resolver resolves the types inside google.protobuf.Any values of
	// messages and status details; nil means the program's registry.
	Resolver dynamic.TypeResolver
	// Bytes says how bytes fields of messages are written ("" is base64,
	// as protobuf JSON writes them; dynamic.BytesText writes UTF-8 bytes
	// as text).
	Bytes dynamic.BytesMode
	// Tap, when set, receives every entry after it is written, in journal
	// order (bcctl serve streams them to its admin API and TUI). It is
	// called with the Writer's lock held, so it must not call the Writer.
	Tap func(Entry)
}

// Writer writes journal entries as JSON lines. It is safe for concurrent
// use: each entry is one line written with one Write call, so lines never
// interleave and an entry is in the file (or the pipe) as soon as its call
// ends.
//
// A Writer numbers entries from 1 in the order it writes them. Events
// from a script engine keep their causes: the engine's IDs are mapped to
// journal IDs, so an entry's Cause is the journal ID of the answered call
// during which it was made (that call ends, and is written, after the calls
// it made). A Writer serves the events of one engine.
type Writer struct {
	opts Options

	mu     sync.Mutex
	w      io.Writer
	closer io.Closer
	next   uint64
	// mapped holds the journal IDs given to engine IDs that a made call
	// named as its cause before the answered call itself was written.
	mapped map[uint64]uint64
	err    error
}

var _ calls.Observer = (*Writer)(nil)

// NewWriter returns a Writer that writes to w.
func NewWriter(w io.Writer, opts Options) *Writer {
	return &Writer{opts: opts, w: w, mapped: map[uint64]uint64{}}
}

// Create creates (or truncates) the journal file at path.
func Create(path string, opts Options) (*Writer, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	w := NewWriter(f, opts)
	w.closer = f
	return w, nil
}

// ObserveCall writes the entry of an event of a script engine, with By
// "script". It makes the Writer a calls.Observer.
func (w *Writer) ObserveCall(ev *calls.Event) {
	_, _ = w.WriteEvent(ev, ByScript)
}

// WriteEvent writes the entry of an engine's event with by as Entry.By and
// returns it as written.
func (w *Writer) WriteEvent(ev *calls.Event, by string) (Entry, error) {
	e := FromEvent(ev, by, w.rendering())
	w.mu.Lock()
	defer w.mu.Unlock()
	// The cause started first, so it gets its ID first.
	if ev.Cause != 0 {
		id, ok := w.mapped[ev.Cause]
		if !ok {
			id = w.newID()
			w.mapped[ev.Cause] = id
		}
		e.Cause = id
	}
	if id, ok := w.mapped[ev.ID]; ok && ev.Origin == calls.Answered {
		e.ID = id
		delete(w.mapped, ev.ID)
	} else {
		e.ID = w.newID()
	}
	return e, w.writeLocked(&e)
}

// Write writes e, giving it the next ID when e.ID is 0, and returns it as
// written. Use it for calls no engine saw (NewEntry builds them).
func (w *Writer) Write(e Entry) (Entry, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if e.ID == 0 {
		e.ID = w.newID()
	}
	return e, w.writeLocked(&e)
}

// NewCall builds the entry of c with the Writer's rendering and writes it.
func (w *Writer) NewCall(c Call) (Entry, error) {
	return w.Write(NewEntry(c, w.rendering()))
}

// rendering is how the Writer renders messages.
func (w *Writer) rendering() Rendering {
	return Rendering{Resolver: w.opts.Resolver, Bytes: w.opts.Bytes}
}

func (w *Writer) newID() uint64 {
	w.next++
	return w.next
}

func (w *Writer) writeLocked(e *Entry) error {
	line, err := json.Marshal(e)
	if err != nil {
		err = fmt.Errorf("journal: entry %d (%s): %w", e.ID, e.Method, err)
	} else {
		line = append(line, '\n')
		if _, werr := w.w.Write(line); werr != nil {
			err = fmt.Errorf("journal: write entry %d: %w", e.ID, werr)
		}
	}
	if err != nil {
		if w.err == nil {
			w.err = err
		}
		return err
	}
	if w.opts.Tap != nil {
		w.opts.Tap(*e)
	}
	return nil
}

// Err returns the first error writing an entry, so a command can report a
// journal that lost entries (a full disk, say) when it exits.
func (w *Writer) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Close closes the file of a Writer made by Create and returns the first
// write error, if any.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	err := w.err
	if w.closer != nil {
		if cerr := w.closer.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("journal: %w", cerr)
		}
		w.closer = nil
	}
	return err
}
