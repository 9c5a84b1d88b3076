package journal_test

import (
	"fmt"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/journal"
)

// A Writer numbers the calls as they end and keeps their causes: the vote
// made during the forward call ends first, and names that call as its cause.
func ExampleWriter() {
	w := journal.NewWriter(os.Stdout, journal.Options{})
	start := time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC)
	w.ObserveCall(&calls.Event{
		ID: 2, Cause: 1, Dir: calls.Reverse, Origin: calls.Made,
		Peer: calls.Peer{BackchannelID: 3}, Method: "gitaly.RefTransaction/VoteTransaction",
		Metadata: metadata.Pairs("x-transaction", "7"), Status: status.New(codes.OK, ""),
		Start: start, Duration: 1500 * time.Microsecond,
		Rule: calls.RuleRef{Name: "vote-before-branch", Pos: calls.Pos{File: "serve.yaml", Line: 2, Col: 5}},
	})
	w.ObserveCall(&calls.Event{
		ID: 1, Dir: calls.Forward, Origin: calls.Answered,
		Peer: calls.Peer{BackchannelID: 3}, Method: "gitaly.OperationService/UserCreateBranch",
		Status: status.New(codes.Aborted, "vote was ABORT"), Start: start, Duration: 2 * time.Millisecond,
	})
	// Output:
	// {"id":2,"cause":1,"time":"2026-11-24T02:00:00Z","dir":"reverse","origin":"made","by":"script","peer":{"id":3},"method":"gitaly.RefTransaction/VoteTransaction","metadata":{"x-transaction":["7"]},"status":{"code":"OK"},"duration_ms":1.5,"rule":{"name":"vote-before-branch","pos":"serve.yaml:2:5"}}
	// {"id":1,"time":"2026-11-24T02:00:00Z","dir":"forward","origin":"answered","by":"script","peer":{"id":3},"method":"gitaly.OperationService/UserCreateBranch","status":{"code":"ABORTED","message":"vote was ABORT"},"duration_ms":2}
}

// A journal read back gives the records a script's expectations are
// checked against.
func ExampleReadAll() {
	lines := `{"id":1,"time":"2026-11-24T02:00:00Z","dir":"reverse","origin":"answered","method":"gitaly.RefTransaction/VoteTransaction","status":{"code":"OK"},"duration_ms":1,"rule":{"name":"vote"}}
{"id":2,"time":"2026-11-24T02:00:00Z","dir":"forward","origin":"made","by":"cli","method":"gitaly.OperationService/UserCreateBranch","status":{"code":"NOT_FOUND"},"duration_ms":3}
`
	entries, err := journal.ReadAll(strings.NewReader(lines), "calls.jsonl")
	if err != nil {
		fmt.Println(err)
		return
	}
	records, err := journal.Records(entries)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range records {
		fmt.Println(r.Dir, r.Method, r.Code, r.Rule)
	}
	// Output:
	// reverse gitaly.RefTransaction/VoteTransaction OK vote
	// forward gitaly.OperationService/UserCreateBranch NotFound
}
