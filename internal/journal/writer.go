package journal

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/words"
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
	// Tap, when set, receives every entry once it is written (buffered, when
	// Buffered), in journal order (bcctl serve streams them to its admin API
	// and TUI). It is called with the Writer's lock held, so it must not
	// call the Writer.
	Tap func(Entry)
	// Buffered keeps entries in memory until Flush (or until bufferLimit
	// bytes are held), so that a busy journal writes in batches. Without it
	// each entry is written at once.
	Buffered bool
}

// bufferLimit is how many bytes of entries a buffered Writer holds before
// it writes them without waiting for Flush.
const bufferLimit = 64 << 10

// Writer writes journal entries as JSON lines. It is safe for concurrent
// use: each entry is one line, lines never interleave, and a line is
// written whole or not at all: when a write fails part way (a full disk),
// the Writer cuts the file back to the last complete line and counts the
// entries lost. Unbuffered, an entry is in the file (or the pipe) as soon
// as its call ends.
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
	mapped  map[uint64]uint64
	buf     []byte // complete lines not yet written
	entries int    // the entries in buf
	written int64  // bytes of complete lines written
	lost    uint64 // entries that could not be written
	err     error  // the first error
}

var _ calls.Observer = (*Writer)(nil)

// LostError says that entries could not be written, and why.
type LostError struct {
	// N is how many entries were lost.
	N   int
	Err error
}

func (e *LostError) Error() string {
	return fmt.Sprintf("journal: %d %s lost: %v", e.N, words.Plural(e.N, "entry", "entries"), e.Err)
}

func (e *LostError) Unwrap() error { return e.Err }

// NewWriter returns a Writer that writes to w. When w is a file, a line a
// failed write left half written is cut off.
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
	start := len(w.buf)
	buf, err := e.AppendJSON(w.buf)
	if err != nil {
		w.buf = buf[:start]
		return w.failLocked(1, fmt.Errorf("entry %d (%s): %w", e.ID, e.Method, err))
	}
	w.buf = append(buf, '\n')
	w.entries++
	if w.opts.Tap != nil {
		w.opts.Tap(*e)
	}
	if w.opts.Buffered && len(w.buf) < bufferLimit {
		return nil
	}
	return w.flushLocked()
}

// Flush writes the entries a buffered Writer holds. Its error is a
// *LostError.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.flushLocked()
}

// flushLocked writes buf. A write that fails part way keeps the complete
// lines it wrote and cuts off the rest, so that the file never ends in
// half a line.
func (w *Writer) flushLocked() error {
	if len(w.buf) == 0 {
		return nil
	}
	buf, entries := w.buf, w.entries
	w.buf, w.entries = w.buf[:0], 0
	n, err := w.w.Write(buf)
	if err == nil && n < len(buf) {
		err = io.ErrShortWrite
	}
	if err == nil {
		w.written += int64(n)
		return nil
	}
	keep := bytes.LastIndexByte(buf[:n], '\n') + 1
	w.written += int64(keep)
	if keep < n {
		if cerr := w.cutLocked(); cerr != nil {
			err = fmt.Errorf("%w (and half a line is left: %w)", err, cerr)
		}
	}
	return w.failLocked(entries-bytes.Count(buf[:keep], []byte{'\n'}), fmt.Errorf("write: %w", err))
}

// cutLocked cuts the file back to the complete lines written.
func (w *Writer) cutLocked() error {
	f, ok := w.w.(interface {
		Truncate(size int64) error
		Seek(offset int64, whence int) (int64, error)
	})
	if !ok {
		return errors.New("the journal is not a file that can be cut")
	}
	if err := f.Truncate(w.written); err != nil {
		return err
	}
	_, err := f.Seek(w.written, io.SeekStart)
	return err
}

// failLocked counts n lost entries and returns their error.
func (w *Writer) failLocked(n int, err error) error {
	w.lost += uint64(n)
	lerr := &LostError{N: n, Err: err}
	if w.err == nil {
		w.err = err
	}
	return lerr
}

// Lost returns how many entries could not be written.
func (w *Writer) Lost() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lost
}

// Err returns nil when every entry so far was written; otherwise an error
// that says how many were lost and why the first was, so a command can
// report a journal that lost entries (a full disk, say) when it exits.
func (w *Writer) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.errLocked()
}

func (w *Writer) errLocked() error {
	if w.lost == 0 {
		return nil
	}
	return fmt.Errorf("journal: %d %s lost, the first: %w", w.lost, words.Plural(w.lost, "entry was", "entries were"), w.err)
}

// Close writes what a buffered Writer holds, closes the file of a Writer
// made by Create, and returns Err.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.flushLocked()
	err := w.errLocked()
	if w.closer != nil {
		if cerr := w.closer.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("journal: %w", cerr)
		}
		w.closer = nil
	}
	return err
}
