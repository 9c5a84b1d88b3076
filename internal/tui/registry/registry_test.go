package registry

import (
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"

	"github.com/bcctl/bcctl/internal/tui/internal/viewtest"
	"github.com/bcctl/bcctl/internal/tui/theme"
)

var t0 = time.Date(2026, 11, 24, 14, 2, 8, 0, time.UTC)

func peer(id uint64, services ...string) Peer {
	p := Peer{ID: id, Addr: "127.0.0.1:5263" + string(rune('0'+id)), ConnectedAt: t0.Add(time.Duration(id) * time.Second)}
	if services != nil {
		p.Services = services
	}
	return p
}

func newTable(width, height int, peers ...Peer) Model {
	m := New(theme.New(nil))
	m.SetSize(width, height)
	m.SetPeers(peers)
	return m
}

func view(m Model) string { return ansi.Strip(m.View()) }

var down = tea.KeyMsg{Type: tea.KeyDown}

func TestRegistryGolden(t *testing.T) {
	busy := peer(2, "gitaly.RefTransaction", "grpc.health.v1.Health")
	busy.ForwardCalls, busy.ReverseCalls, busy.LastCall = 3, 2, t0.Add(time.Minute)
	tests := []struct {
		name   string
		width  int
		height int
		peers  []Peer
		events []Event
		keys   int // presses of down, focused
	}{
		{name: "empty", width: 90, height: 4},
		{name: "peers", width: 100, height: 6, peers: []Peer{peer(3, []string{}...), busy, peer(1)}},
		{name: "selection-follows-keys", width: 100, height: 6, peers: []Peer{peer(1), busy, peer(3)}, keys: 1},
		{name: "joined-and-left", width: 100, height: 6, peers: []Peer{peer(1), peer(2)}, events: []Event{
			{Kind: Joined, Peer: peer(4, "gitaly.RefTransaction")},
			{Kind: Left, Peer: peer(1)},
			{Kind: Updated, Peer: busy},
		}},
		{name: "narrow", width: 70, height: 5, peers: []Peer{busy}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newTable(tt.width, tt.height, tt.peers...)
			for _, ev := range tt.events {
				m.Apply(ev)
			}
			m.Focus()
			for range tt.keys {
				m, _ = m.Update(down)
			}
			v := view(m)
			viewtest.RequireGolden(t, v, tt.width, tt.height)
		})
	}
}

func TestSelectionStaysOnItsPeer(t *testing.T) {
	m := newTable(100, 8, peer(1), peer(2), peer(3))
	m.Focus()
	m, _ = m.Update(down) // peer 2
	tests := []struct {
		ev   Event
		want uint64
	}{
		{Event{Kind: Joined, Peer: peer(0)}, 2}, // a row above it
		{Event{Kind: Left, Peer: peer(1)}, 2},   // a row above it leaves
		{Event{Kind: Updated, Peer: peer(2, "x")}, 2},
		{Event{Kind: Left, Peer: peer(2)}, 3}, // it leaves: the row in its place
	}
	for i, tt := range tests {
		m.Apply(tt.ev)
		got, ok := m.Selected()
		if !ok || got.ID != tt.want {
			t.Fatalf("after event %d (%v peer %d): selected %d (%v), want %d", i, tt.ev.Kind, tt.ev.Peer.ID, got.ID, ok, tt.want)
		}
	}
	var ids []uint64
	for _, p := range m.Peers() {
		ids = append(ids, p.ID)
	}
	if len(ids) != 2 || ids[0] != 0 || ids[1] != 3 {
		t.Errorf("peers %v, want [0 3] in ID order", ids)
	}
}

func TestKeysMoveOnlyWhenFocused(t *testing.T) {
	m := newTable(100, 6, peer(1), peer(2))
	m, _ = m.Update(down)
	if p, _ := m.Selected(); p.ID != 1 {
		t.Errorf("a blurred table moved to peer %d", p.ID)
	}
	m.Focus()
	m, _ = m.Update(down)
	if p, _ := m.Selected(); p.ID != 2 {
		t.Errorf("a focused table selected peer %d after down, want 2", p.ID)
	}
	if _, ok := newTable(100, 6).Selected(); ok {
		t.Error("an empty table has a selection")
	}
}

func TestSummary(t *testing.T) {
	for n, want := range map[int]string{0: "0 peers", 1: "1 peer", 2: "2 peers"} {
		if got := Summary(n); got != want {
			t.Errorf("Summary(%d) = %q, want %q", n, got, want)
		}
	}
}
