package journal

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"google.golang.org/grpc/codes"
)

// limitFileSize lets this process write files of at most limit bytes
// until the test ends, as a full disk would: a write that crosses the
// limit is cut short, later ones fail (EFBIG; Go ignores SIGXFSZ).
func limitFileSize(t *testing.T, limit uint64) {
	t.Helper()
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatalf("getrlimit: %v", err)
	}
	lim := old
	lim.Cur = limit
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Fatalf("setrlimit: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
			t.Errorf("restore the file size limit: %v", err)
		}
	})
}

// TestFullDiskLeavesNoPartialLine writes a journal into a file that fills
// up part way through an entry: the file holds only complete lines, every
// entry is either in it or counted as lost, and Close says how many were
// lost.
func TestFullDiskLeavesNoPartialLine(t *testing.T) {
	const entries = 200
	const limit = 5000 // bytes: about 40 entries, the last one cut short
	for _, buffered := range []bool{false, true} {
		name := map[bool]string{false: "unbuffered", true: "buffered"}[buffered]
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "journal.jsonl")
			w, err := Create(path, Options{Buffered: buffered})
			if err != nil {
				t.Fatal(err)
			}
			func() {
				limitFileSize(t, limit)
				var lostErrs int
				for i := range entries {
					_, err := w.Write(Entry{Dir: "forward", Method: "acme.Users/Get", Status: &Status{Code: codes.OK.String()}, Step: strings.Repeat("s", i%50)})
					if buffered && i%16 == 15 {
						err = w.Flush()
					}
					var lerr *LostError
					if errors.As(err, &lerr) {
						lostErrs += lerr.N
					}
				}
				err = w.Close()
				if err == nil {
					t.Fatal("Close = nil after the disk filled up, want the lost entries")
				}
				t.Logf("Close: %v", err)
				if !errors.Is(err, syscall.EFBIG) {
					t.Errorf("Close = %v, want it to wrap EFBIG", err)
				}
			}()

			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if len(data) == 0 || data[len(data)-1] != '\n' {
				t.Fatalf("the journal (%d bytes) does not end with a complete line: ...%q", len(data), data[max(0, len(data)-40):])
			}
			// The disk filled up inside a line (the limit falls on no line's
			// end): that line was cut off.
			if len(data) >= limit {
				t.Errorf("the journal has %d bytes, want the line cut at the %d-byte limit gone", len(data), limit)
			}
			lines := 0
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				var e Entry
				if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
					t.Fatalf("line %d is not an entry: %v: %q", lines+1, err, sc.Text())
				}
				if e.ID != uint64(lines+1) {
					t.Errorf("line %d has ID %d", lines+1, e.ID)
				}
				lines++
			}
			if got := uint64(lines) + w.Lost(); got != entries {
				t.Errorf("%d lines in the file and %d lost = %d, want %d entries", lines, w.Lost(), got, entries)
			}
			if lines == 0 {
				t.Errorf("no line was written before the disk filled up")
			}
		})
	}
}
