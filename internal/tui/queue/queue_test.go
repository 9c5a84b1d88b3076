package queue

import (
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"google.golang.org/grpc/codes"

	"github.com/bcctl/bcctl/internal/tui/answer"
	"github.com/bcctl/bcctl/internal/tui/theme"
)

func TestFormatLeft(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{400 * time.Millisecond, "0s"},
		{9*time.Second + 600*time.Millisecond, "10s"},
		{59 * time.Second, "59s"},
		{65 * time.Second, "1m05s"},
		{2*time.Hour + 3*time.Minute, "2h03m"},
	}
	for _, tt := range tests {
		if got := FormatLeft(tt.d); got != tt.want {
			t.Errorf("FormatLeft(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

var now = time.Date(2026, 11, 24, 14, 0, 0, 0, time.UTC)

func newQueue() Model {
	m := New(theme.New(nil))
	m.Now = func() time.Time { return now }
	m.SetNow(now)
	m.SetSize(40, 5)
	m.Focus()
	return m
}

func TestNewCallsAreSelectedOnlyWhenNothingOpenIs(t *testing.T) {
	m := newQueue()
	m.Upsert(Item{ID: 1, Method: "a.B/C", State: answer.Pending})
	m.Upsert(Item{ID: 2, Method: "a.B/C", State: answer.Pending})
	if it, _ := m.Selected(); it.ID != 1 {
		t.Fatalf("selected #%d, want #1: a new call must not steal the selection from an open one", it.ID)
	}
	m.Upsert(Item{ID: 1, Method: "a.B/C", State: answer.Answered})
	m.Upsert(Item{ID: 3, Method: "a.B/C", State: answer.Pending})
	if it, _ := m.Selected(); it.ID != 3 {
		t.Fatalf("selected #%d, want the new #3 once #1 is over", it.ID)
	}
	if !m.NextPending() {
		t.Fatal("NextPending found nothing")
	}
	if it, _ := m.Selected(); it.ID != 2 {
		t.Errorf("NextPending selected #%d, want #2 (wrapping around)", it.ID)
	}
	if got := m.Pending(); got != 2 {
		t.Errorf("Pending = %d, want 2", got)
	}
}

func TestKeysAndTicks(t *testing.T) {
	m := newQueue()
	for id := uint64(1); id <= 3; id++ {
		m.Upsert(Item{ID: id, Method: "gitaly.RefTransaction/VoteTransaction", State: answer.Answered, Code: codes.OK, Arrived: now})
	}
	m.Upsert(Item{ID: 4, Method: "gitaly.RefTransaction/VoteTransaction", State: answer.Pending, Arrived: now, Deadline: now.Add(10 * time.Second)})
	down := tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("j")}
	m.Select(1)
	m, _ = m.Update(down)
	if it, _ := m.Selected(); it.ID != 2 {
		t.Errorf("after j: #%d, want #2", it.ID)
	}
	m.Blur()
	m, _ = m.Update(down)
	if it, _ := m.Selected(); it.ID != 2 {
		t.Errorf("a blurred queue moved to #%d", it.ID)
	}
	m.Select(4)
	if !strings.Contains(m.View(), "10s left") {
		t.Errorf("view lacks the time left:\n%s", m.View())
	}
	// A tick of another queue changes nothing; this queue's tick reads the
	// clock and schedules the next one.
	now = now.Add(7 * time.Second)
	other := New(theme.New(nil))
	m, cmd := m.Update(TickMsg{Time: now, id: other.id})
	if cmd != nil || !strings.Contains(m.View(), "10s left") {
		t.Error("a foreign tick was taken")
	}
	m, cmd = m.Update(TickMsg{Time: now, id: m.id})
	if cmd == nil || !strings.Contains(m.View(), "3s left") {
		t.Errorf("own tick: cmd %v, view:\n%s", cmd != nil, m.View())
	}
	if lines := strings.Split(m.View(), "\n"); len(lines) != 5 {
		t.Errorf("view has %d lines, want the queue's height 5", len(lines))
	}
}
