package journal

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/bcctl/bcctl/internal/calls"
)

// Reader reads journal entries, one JSON line at a time. Blank lines are
// skipped; a line that is not an entry is an error naming its line number.
type Reader struct {
	r    *bufio.Reader
	name string
	line int
}

// NewReader returns a Reader over r; name is used in errors ("journal.jsonl").
func NewReader(r io.Reader, name string) *Reader {
	if name == "" {
		name = "journal"
	}
	return &Reader{r: bufio.NewReader(r), name: name}
}

// Next returns the next entry, or io.EOF after the last one.
func (r *Reader) Next() (Entry, error) {
	for {
		data, err := r.r.ReadBytes('\n')
		if len(data) == 0 && err != nil {
			if err == io.EOF {
				return Entry{}, io.EOF
			}
			return Entry{}, fmt.Errorf("%s: line %d: %w", r.name, r.line+1, err)
		}
		r.line++
		data = bytes.TrimSpace(data)
		if len(data) == 0 {
			continue
		}
		var e Entry
		dec := json.NewDecoder(bytes.NewReader(data))
		if derr := dec.Decode(&e); derr != nil {
			return Entry{}, fmt.Errorf("%s:%d: not a journal entry: %w", r.name, r.line, derr)
		}
		if (e.Method == "" && e.Stream == nil) || e.Dir == "" {
			return Entry{}, fmt.Errorf("%s:%d: not a journal entry: no method or dir", r.name, r.line)
		}
		return e, nil
	}
}

// ReadAll reads every entry of r.
func ReadAll(r io.Reader, name string) ([]Entry, error) {
	jr := NewReader(r, name)
	var out []Entry
	for {
		e, err := jr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, e)
	}
}

// ReadFile reads every entry of the journal at path.
func ReadFile(path string) ([]Entry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	defer f.Close()
	return ReadAll(f, path)
}

// Records returns the Records of entries, for Script.Check; entries of
// side streams are left out.
func Records(entries []Entry) ([]calls.Record, error) {
	out := make([]calls.Record, 0, len(entries))
	for i := range entries {
		if entries[i].Stream != nil {
			continue
		}
		rec, err := entries[i].Record()
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	return out, nil
}
