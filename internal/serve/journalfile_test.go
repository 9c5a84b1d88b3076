package serve

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/bcctl/bcctl/internal/journal"
)

// TestFileJournalKeepsEveryEntry makes many calls at once to a serve whose
// journal is a buffered file, as bcctl serve --journal writes it: the calls
// do not wait for their entries, and after Shutdown the file holds one
// complete line for every call, each ID once, in the order of the IDs
// (each call is numbered as it ends, and none causes another), which is
// also the order of the backlog.
func TestFileJournalKeepsEveryEntry(t *testing.T) {
	const callers, each = 8, 50
	path := filepath.Join(t.TempDir(), "journal.jsonl")
	jw, err := journal.Create(path, journal.Options{Buffered: true})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{Schema: corpusSchema(t), Script: parseScript(t, "serve.yaml", voteScript), Journal: JournalWriter(jw)})
	if err != nil {
		t.Fatal(err)
	}
	addr, served := serveLoopback(t, srv)
	ctx := testContext(t)
	conn := dialPlain(t, addr)
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for range each {
				if _, st := call(t, ctx, conn, "gitaly.OperationService/UserCreateBranch", `{}`); st.Code() != codes.OK {
					t.Errorf("call: %v", st)
					return
				}
			}
		})
	}
	wg.Wait()
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if err := jw.Close(); err != nil {
		t.Fatalf("journal: %v", err)
	}

	entries, err := journal.ReadFile(path)
	if err != nil {
		t.Fatalf("read the journal: %v", err)
	}
	seen := map[uint64]bool{}
	for i, e := range entries {
		if seen[e.ID] {
			t.Errorf("entry %d is in the journal twice", e.ID)
		}
		seen[e.ID] = true
		if i > 0 && e.ID <= entries[i-1].ID {
			t.Errorf("entry %d comes after entry %d in the journal, want the order of the IDs", e.ID, entries[i-1].ID)
		}
	}
	if len(entries) != callers*each {
		t.Errorf("the journal holds %d entries, want %d", len(entries), callers*each)
	}
	var backlog []uint64
	for ev := range srv.Subscribe(ctx, SubscribeOptions{Backlog: true}).C {
		backlog = append(backlog, ev.ID)
	}
	var file []uint64
	for _, e := range entries {
		file = append(file, e.ID)
	}
	if !slices.Equal(backlog, file) {
		t.Errorf("the backlog has the events in another order than the journal file:\nbacklog %v\n   file %v", backlog, file)
	}
}
