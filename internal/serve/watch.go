package serve

import (
	"bytes"
	"context"
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

// DefaultWatchInterval is how often WatchScript looks at the file.
const DefaultWatchInterval = 500 * time.Millisecond

// WatchScript reloads the script at path whenever its content changes,
// until ctx ends or the server shuts down. load validates the new content; when it fails, the
// script in force stays, and the failure is reported (and not retried until
// the file changes again). Each attempt is logged and passed to report (may
// be nil). A file that cannot be read (being replaced, say) is looked at
// again at the next tick. load gets the content that changed (script.Parse
// with the file's path as the name, typically), so what is validated is
// what was seen.
func (s *Server) WatchScript(ctx context.Context, path string, interval time.Duration, load func(ctx context.Context, src []byte) (*script.Script, error), report func(ReloadOutcome)) {
	if interval <= 0 {
		interval = DefaultWatchInterval
	}
	last, _ := os.ReadFile(path)
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
		data, err := os.ReadFile(path)
		if err != nil || bytes.Equal(data, last) {
			continue
		}
		last = data
		out := ReloadOutcome{At: time.Now()}
		out.Script, out.Err = load(ctx, data)
		if out.Err != nil {
			s.log.Error("serve: script changed but does not load; the previous script stays in force", "script", path, "err", out.Err)
		} else {
			s.Reload(out.Script)
		}
		if report != nil {
			report(out)
		}
	}
}
