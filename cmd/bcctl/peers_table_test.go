package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bcctl/bcctl/internal/admin/adminpb"
)

var ansiCodes = regexp.MustCompile("\x1b\\[[0-9;]*m")

// TestPeersTableAlignsWithColor: on a color terminal the bold header lines
// up with the rows; escape codes take no column width.
func TestPeersTableAlignsWithColor(t *testing.T) {
	now := time.Now()
	peers := []*adminpb.Peer{
		{Id: 1, RemoteAddr: "127.0.0.1:50001", ConnectedAt: timestamppb.New(now), Discovery: "done", Services: []string{"gitaly.RefTransaction"}},
		{Id: 12, RemoteAddr: "127.0.0.1:50002", ConnectedAt: timestamppb.New(now), Discovery: "pending"},
	}
	var plain, colored bytes.Buffer
	if err := peersTable(&plain, peers, now, ColorScheme{}); err != nil {
		t.Fatal(err)
	}
	if err := peersTable(&colored, peers, now, ColorScheme{enabled: true}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(colored.String(), "\x1b[1mID") {
		t.Fatalf("the header is not bold:\n%q", colored.String())
	}
	if got := ansiCodes.ReplaceAllString(colored.String(), ""); got != plain.String() {
		t.Errorf("with color, less the escape codes:\n%s\nwithout color:\n%s", got, plain.String())
	}
	lines := strings.Split(plain.String(), "\n")
	if h, r := strings.Index(lines[0], "ADDRESS"), strings.Index(lines[1], "127.0.0.1"); h != r {
		t.Errorf("ADDRESS at column %d, the address at %d:\n%s", h, r, plain.String())
	}
}
