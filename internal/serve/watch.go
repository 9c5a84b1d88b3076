package serve

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/bcctl/bcctl/internal/script"
)

// ReloadOutcome is the result of one reload attempt of a watched script.
type ReloadOutcome struct {
	At time.Time
	// Script is the script now in force; nil when Err is set.
	Script *script.Script
	// Err says why the changed file did not load; the old script stays in
	// force.
	Err error
}

// ErrEmptyReload refuses a watched script that changed into one with no
// rules and no expectations that does not say so: an empty file, most
// likely caught being rewritten, which would make every call UNIMPLEMENTED
// and every expectation vanish. A file that wants no rules says `rules: []`.
var ErrEmptyReload = errors.New("the script now has no rules and no expectations (an empty file?); write `rules: []` to run without any")

// DefaultWatchInterval is how often WatchScript looks at the file.
const DefaultWatchInterval = 500 * time.Millisecond

// WatchOptions configure WatchScript.
type WatchOptions struct {
	// Path is the script file.
	Path string
	// Loaded is the content of the script in force; a file that differs
	// from it is reloaded.
	Loaded []byte
	// Interval is how often the file is read (default
	// DefaultWatchInterval).
	Interval time.Duration
	// Load validates changed content (script.Parse with Path as the name,
	// typically), so that what is validated is what was seen.
	Load func(ctx context.Context, src []byte) (*script.Script, error)
	// Report, when set, is told of every attempt.
	Report func(ReloadOutcome)
}

// WatchScript reloads the script file whenever its content changes (and
// then stays the same for one interval), until ctx ends or the server
// shuts down. When the new content does not load,
// the script in force stays, and the failure is logged and reported (and
// not retried until the file changes again). A file that cannot be read
// (being replaced, say) is looked at again at the next tick.
func (s *Server) WatchScript(ctx context.Context, opts WatchOptions) {
	interval := opts.Interval
	if interval <= 0 {
		interval = DefaultWatchInterval
	}
	last := opts.Loaded
	// A change is loaded once the file has kept the same content for one
	// interval: an editor or a cp that truncates and then writes is seen
	// whole, not half-written (or empty, which is a valid script).
	var pending []byte
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		data, err := os.ReadFile(opts.Path)
		if err != nil || bytes.Equal(data, last) {
			pending = nil
			continue
		}
		if pending == nil || !bytes.Equal(data, pending) {
			pending = data
			continue
		}
		last, pending = data, nil
		out := ReloadOutcome{At: time.Now()}
		out.Script, out.Err = opts.Load(ctx, data)
		if out.Err == nil && out.Script.Empty() && !s.engine.Script().Empty() {
			out.Script, out.Err = nil, fmt.Errorf("%s: %w", opts.Path, ErrEmptyReload)
		}
		if out.Err != nil {
			s.reloadFailed(out.Err)
			if opts.Report == nil { // else the reporter says it, once
				s.log.Error("serve: the script changed but does not load; the previous script stays in force", "script", opts.Path, "err", out.Err)
			}
		} else {
			s.Reload(out.Script)
		}
		if opts.Report != nil {
			opts.Report(out)
		}
	}
}
