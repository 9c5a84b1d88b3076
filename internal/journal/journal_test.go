package journal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/corpus"
	"github.com/bcctl/bcctl/internal/dynamic"
)

func corpusSchema(t *testing.T) *dynamic.FileSource {
	t.Helper()
	src, err := dynamic.NewSourceFromProtosetBytes(corpus.Protoset)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func msg(t *testing.T, src *dynamic.FileSource, name, js string) proto.Message {
	t.Helper()
	d, err := src.FindSymbol(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	m := dynamicpb.NewMessage(d.(protoreflect.MessageDescriptor))
	if err := dynamic.ParseJSON([]byte(js), m, src.Types()); err != nil {
		t.Fatal(err)
	}
	return m
}

var t0 = time.Date(2026, 11, 24, 2, 0, 0, 123456000, time.UTC)

func TestWriterLineFormat(t *testing.T) {
	src := corpusSchema(t)
	var buf bytes.Buffer
	w := NewWriter(&buf, Options{Resolver: src.Types()})
	// The made call (engine ID 8) happens during the answered call (engine
	// ID 7), and ends first.
	made := &calls.Event{
		ID: 8, Cause: 7, Dir: calls.Reverse, Origin: calls.Made,
		Peer:      calls.Peer{BackchannelID: 3, Addr: "127.0.0.1:51234"},
		Method:    "gitaly.RefTransaction/VoteTransaction",
		Metadata:  metadata.Pairs("x-transaction", "42", "trace-bin", "\x00\xff"),
		Requests:  []proto.Message{msg(t, src, "gitaly.VoteTransactionRequest", `{"transaction_id": 42}`)},
		Responses: []proto.Message{msg(t, src, "gitaly.VoteTransactionResponse", `{"state": "ABORT"}`)},
		Status:    status.New(codes.OK, ""),
		Start:     t0, Duration: 1234 * time.Microsecond,
		Rule: calls.RuleRef{Name: "vote-before-branch", Pos: calls.Pos{File: "vote.yaml", Line: 3, Col: 5}},
		Step: calls.Pos{File: "vote.yaml", Line: 7, Col: 9},
	}
	st, _ := status.New(codes.Aborted, "vote was ABORT").WithDetails(&errdetails.ErrorInfo{Reason: "VOTE", Domain: "gitaly"})
	answered := &calls.Event{
		ID: 7, Dir: calls.Forward, Origin: calls.Answered,
		Peer:   calls.Peer{BackchannelID: 3, Addr: "127.0.0.1:51234"},
		Method: "gitaly.OperationService/UserCreateBranch", Metadata: metadata.MD{},
		Status: st, Start: t0, Duration: 5 * time.Millisecond,
		Rule: calls.RuleRef{Name: "vote-before-branch", Pos: calls.Pos{File: "vote.yaml", Line: 3, Col: 5}},
	}
	w.ObserveCall(made)
	w.ObserveCall(answered)
	if _, err := w.NewCall(Call{Dir: DirForward, Origin: OriginMade, By: ByCLI, Method: "acme.Users/Get",
		Status: status.New(codes.OK, ""), Start: t0}); err != nil {
		t.Fatal(err)
	}
	want := `{"id":2,"cause":1,"time":"2026-11-24T02:00:00.123456Z","dir":"reverse","origin":"made","by":"script","peer":{"id":3,"addr":"127.0.0.1:51234"},"method":"gitaly.RefTransaction/VoteTransaction","metadata":{"trace-bin":["AP8="],"x-transaction":["42"]},"requests":[{"transaction_id":"42"}],"responses":[{"state":"ABORT"}],"status":{"code":"OK"},"duration_ms":1.234,"rule":{"name":"vote-before-branch","pos":"vote.yaml:3:5"},"step":"vote.yaml:7:9"}
{"id":1,"time":"2026-11-24T02:00:00.123456Z","dir":"forward","origin":"answered","by":"script","peer":{"id":3,"addr":"127.0.0.1:51234"},"method":"gitaly.OperationService/UserCreateBranch","status":{"code":"ABORTED","message":"vote was ABORT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"VOTE","domain":"gitaly"}]},"duration_ms":5,"rule":{"name":"vote-before-branch","pos":"vote.yaml:3:5"}}
{"id":3,"time":"2026-11-24T02:00:00.123456Z","dir":"forward","origin":"made","by":"cli","method":"acme.Users/Get","status":{"code":"OK"},"duration_ms":0}
`
	if got := buf.String(); got != want {
		t.Errorf("journal:\ngot:\n%s\nwant:\n%s", got, want)
	}
	if err := w.Err(); err != nil {
		t.Fatal(err)
	}
}

func TestReaderRoundTripAndRecords(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf, Options{})
	for _, c := range []Call{
		{Dir: DirForward, Origin: OriginMade, By: ByCLI, Method: "gitaly.OperationService/UserCreateBranch", Status: status.New(codes.OK, ""), Start: t0},
		{Dir: DirReverse, Origin: OriginAnswered, By: ByScript, Peer: calls.Peer{Addr: "x"}, Method: "gitaly.RefTransaction/VoteTransaction", Status: status.New(codes.NotFound, "no"), Start: t0},
	} {
		if _, err := w.NewCall(c); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := ReadAll(strings.NewReader("\n"+buf.String()+"\n"), "j.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Fatalf("read %d entries, want 2", len(entries))
	}
	recs, err := Records(entries)
	if err != nil {
		t.Fatal(err)
	}
	want := []calls.Record{
		{Dir: calls.Forward, Method: "gitaly.OperationService/UserCreateBranch", Code: codes.OK},
		{Dir: calls.Reverse, Method: "gitaly.RefTransaction/VoteTransaction", Code: codes.NotFound},
	}
	for i := range want {
		if recs[i] != want[i] {
			t.Errorf("record %d = %+v, want %+v", i, recs[i], want[i])
		}
	}
}

func TestReaderErrorsNameTheLine(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"id":1,"dir":"forward","method":"a.B/C"}` + "\nnot json\n", "j.jsonl:2: not a journal entry"},
		{`{"id":1}`, "j.jsonl:1: not a journal entry: no method or dir"},
	} {
		_, err := ReadAll(strings.NewReader(tc.in), "j.jsonl")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ReadAll(%q) error = %v, want it to contain %q", tc.in, err, tc.want)
		}
	}
	e := Entry{ID: 4, Dir: "sideways", Method: "a.B/C"}
	if _, err := e.Record(); err == nil || !strings.Contains(err.Error(), `entry 4: unknown dir "sideways"`) {
		t.Errorf("Record error = %v", err)
	}
}

// TestWriterConcurrentLinesDoNotInterleave writes from many goroutines and
// checks that every line is a whole entry with a unique ID.
func TestWriterConcurrentLinesDoNotInterleave(t *testing.T) {
	var buf bytes.Buffer
	var tapped int
	w := NewWriter(&buf, Options{Tap: func(Entry) { tapped++ }})
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = w.NewCall(Call{Dir: DirForward, Origin: OriginMade, Method: "a.B/C", Metadata: metadata.Pairs("n", strings.Repeat("x", i*100)), Status: status.New(codes.OK, "")})
		}()
	}
	wg.Wait()
	entries, err := ReadAll(&buf, "")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]bool{}
	for _, e := range entries {
		if seen[e.ID] {
			t.Errorf("ID %d twice", e.ID)
		}
		seen[e.ID] = true
	}
	if len(entries) != 50 || tapped != 50 {
		t.Errorf("got %d entries, %d tapped; want 50", len(entries), tapped)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriterReportsWriteErrors(t *testing.T) {
	w := NewWriter(failingWriter{}, Options{})
	w.ObserveCall(&calls.Event{ID: 1, Dir: calls.Reverse, Origin: calls.Answered, Method: "a.B/C", Status: status.New(codes.OK, "")})
	if err := w.Err(); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("Err() = %v, want the write error", err)
	}
}

func TestMessageJSONKeepsWhatItCannotRender(t *testing.T) {
	src := corpusSchema(t)
	// An Any whose type the (empty) resolver does not know.
	u := msg(t, src, "acme.User", `{"id": "1", "extra": {"@type": "type.googleapis.com/acme.Address", "city": "Oslo"}}`)
	got := MessageJSON(u, Rendering{Resolver: emptyResolver{}})
	var m map[string]string
	if err := json.Unmarshal(got, &m); err != nil {
		t.Fatalf("fallback is not a JSON object of strings: %s", got)
	}
	if m["@type"] != "acme.User" || m["@wire"] == "" || m["@error"] == "" {
		t.Errorf("fallback = %s", got)
	}
}

// TestBytesText checks that a Writer with Bytes: BytesText writes bytes
// fields that are UTF-8 as text, requests and responses alike, and keeps
// other bytes base64; the default stays protobuf JSON.
func TestBytesText(t *testing.T) {
	src := corpusSchema(t)
	req := msg(t, src, "gitaly.UserCreateBranchRequest", `{"branch_name": "ZmVhdHVyZS94", "start_point": "AP8="}`)
	resp := msg(t, src, "gitaly.UserCreateBranchResponse", `{"branch": {"name": "ZmVhdHVyZS94", "target_commit": {"id": "abc", "subject": "Zml4"}}}`)
	call := Call{Dir: DirForward, Origin: OriginMade, By: ByCLI, Method: "gitaly.OperationService/UserCreateBranch",
		Requests: []proto.Message{req}, Responses: []proto.Message{resp}, Status: status.New(codes.OK, "")}
	for _, tt := range []struct {
		bytes     dynamic.BytesMode
		req, resp string
	}{
		{"", `{"branch_name":"ZmVhdHVyZS94","start_point":"AP8="}`, `{"branch":{"name":"ZmVhdHVyZS94","target_commit":{"id":"abc","subject":"Zml4"}}}`},
		{dynamic.BytesText, `{"branch_name":"feature/x","start_point":"AP8="}`, `{"branch":{"name":"feature/x","target_commit":{"id":"abc","subject":"fix"}}}`},
	} {
		var buf strings.Builder
		w := NewWriter(&buf, Options{Resolver: src.Types(), Bytes: tt.bytes})
		e, err := w.NewCall(call)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(e.Requests[0]); got != tt.req {
			t.Errorf("bytes %q: request %s, want %s", tt.bytes, got, tt.req)
		}
		if got := string(e.Responses[0]); got != tt.resp {
			t.Errorf("bytes %q: response %s, want %s", tt.bytes, got, tt.resp)
		}
		if !strings.Contains(buf.String(), tt.resp) {
			t.Errorf("bytes %q: the line %s lacks %s", tt.bytes, buf.String(), tt.resp)
		}
	}
}

type emptyResolver struct{}

func (emptyResolver) FindMessageByName(protoreflect.FullName) (protoreflect.MessageType, error) {
	return nil, errNotFound
}
func (emptyResolver) FindMessageByURL(string) (protoreflect.MessageType, error) {
	return nil, errNotFound
}
func (emptyResolver) FindExtensionByName(protoreflect.FullName) (protoreflect.ExtensionType, error) {
	return nil, errNotFound
}
func (emptyResolver) FindExtensionByNumber(protoreflect.FullName, protoreflect.FieldNumber) (protoreflect.ExtensionType, error) {
	return nil, errNotFound
}

var errNotFound = errors.New("not found")

// TestProxyEntries: the entries of bcctl proxy, a relayed call and a side
// stream, read back; the side stream is no call for the expectations.
func TestProxyEntries(t *testing.T) {
	id := int64(7)
	lines := []Entry{
		{ID: 1, Time: t0, Dir: DirForward, Origin: OriginRelayed, Peer: &Peer{ID: 1, Addr: "127.0.0.1:5555"},
			Method: "gitaly.SmartHTTPService/PostUploadPackWithSidechannel", Status: &Status{Code: "OK"}, DurationMS: 3,
			Relay: &Relay{Conn: 1, CalleeMS: 2.5, AddedMS: 0.5, RequestCount: 1, ResponseCount: 1, RequestBytes: 10, ResponseBytes: 0}},
		{ID: 2, Cause: 1, Time: t0, Dir: DirReverse, Origin: OriginRelayed, Peer: &Peer{ID: 1},
			Stream: &Stream{Kind: "sidechannel", ChannelID: &id, ToClient: 19, ToUpstream: 2, ClosedFirst: "upstream"}, DurationMS: 1},
	}
	var buf bytes.Buffer
	w := NewWriter(&buf, Options{})
	for _, e := range lines {
		if _, err := w.Write(e); err != nil {
			t.Fatal(err)
		}
	}
	if got := buf.String(); !strings.Contains(got, `"relay":{"conn":1,"callee_ms":2.5,"added_ms":0.5,`) ||
		!strings.Contains(got, `"stream":{"conn":0,"kind":"sidechannel","channel_id":7,"to_client":19,"to_upstream":2,"closed_first":"upstream"}`) {
		t.Errorf("lines:\n%s", got)
	}
	entries, err := ReadAll(&buf, "proxy.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 || entries[1].Stream == nil || *entries[1].Stream.ChannelID != 7 {
		t.Fatalf("read back %+v", entries)
	}
	recs, err := Records(entries)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Method != lines[0].Method {
		t.Errorf("records %+v, want the relayed call only", recs)
	}
	if _, err := entries[1].Record(); !errors.Is(err, ErrNotACall) {
		t.Errorf("Record of a side stream: got %v, want ErrNotACall", err)
	}
}
