package recording_test

import (
	"context"
	"testing"

	"github.com/charmbracelet/x/exp/golden"
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
	"github.com/bcctl/bcctl/internal/recording"
	"github.com/bcctl/bcctl/internal/script"
)

// session builds recorded calls over the corpus.
type session struct {
	t     *testing.T
	src   *dynamic.FileSource
	calls []*recording.Call
}

func newSession(t *testing.T) *session {
	src, err := dynamic.NewSourceFromProtosetBytes(corpus.Protoset)
	if err != nil {
		t.Fatal(err)
	}
	return &session{t: t, src: src}
}

// call adds a call of method with one request (JSON) and the responses
// (JSON); st nil means OK.
func (s *session) call(dir calls.Direction, cause uint64, method, request string, st *status.Status, responses ...string) uint64 {
	s.t.Helper()
	md, err := dynamic.FindMethod(context.Background(), s.src, method)
	if err != nil {
		s.t.Fatal(err)
	}
	c := &recording.Call{
		ID: uint64(len(s.calls) + 1), Cause: cause, Dir: dir, Method: method, Desc: md, Status: st,
		Requests: []proto.Message{s.msg(md.Input(), request)},
		Metadata: metadata.Pairs(":authority", "x", "content-type", "application/grpc", "x-transaction", "7"),
	}
	for _, r := range responses {
		c.Responses = append(c.Responses, s.msg(md.Output(), r))
	}
	s.calls = append(s.calls, c)
	return c.ID
}

func (s *session) msg(d protoreflect.MessageDescriptor, js string) proto.Message {
	s.t.Helper()
	m := dynamicpb.NewMessage(d)
	if err := dynamic.ParseJSON([]byte(js), m, s.src.Types()); err != nil {
		s.t.Fatal(err)
	}
	return m
}

// TestScript records a session and checks the script, which must load
// against the schema.
func TestScript(t *testing.T) {
	s := newSession(t)
	fwd, rev := calls.Forward, calls.Reverse

	// Two branches: the first vote commits, the second aborts, so the
	// branch name tells the answers apart.
	b1 := s.call(fwd, 0, "gitaly.OperationService/UserCreateBranch", `{"branch_name":"ZmVhdHVyZS94"}`, nil, `{"branch":{"name":"ZmVhdHVyZS94","target_commit":{"id":"voted"}}}`)
	s.call(rev, b1, "gitaly.RefTransaction/VoteTransaction", `{"transaction_id":"7","reference_updates_hash":"YWJj"}`, nil, `{"state":"COMMIT"}`)
	b2 := s.call(fwd, 0, "gitaly.OperationService/UserCreateBranch", `{"branch_name":"ZmVhdHVyZS8ke3l9"}`, status.New(codes.Aborted, "vote was ABORT"))
	s.call(rev, b2, "gitaly.RefTransaction/VoteTransaction", `{"transaction_id":"13","reference_updates_hash":"AAEC"}`, nil, `{"state":"ABORT"}`)
	s.calls[len(s.calls)-1].Header = metadata.Pairs("content-type", "application/grpc", "x-voter", "praefect")

	// The same request fails, then succeeds: a sequence.
	notFound, err := status.New(codes.NotFound, "no user 1").WithDetails(&errdetails.ResourceInfo{ResourceType: "user", ResourceName: "1"})
	if err != nil {
		t.Fatal(err)
	}
	s.call(fwd, 0, "acme.Users/Get", `{"id":"1"}`, notFound)
	s.call(fwd, 0, "acme.Users/Get", `{"id":"1"}`, nil, `{"id":"1","name":"ann"}`)
	s.calls[len(s.calls)-1].Trailer = metadata.Pairs("x-cache", "miss", "x-trace-bin", "\x00\x01")
	// A server stream, always answered alike.
	s.call(fwd, 0, "acme.Users/List", `{}`, nil, `{"id":"1","name":"ann"}`, `{"id":"2","name":"bob"}`)
	s.call(fwd, 0, "acme.Users/List", `{}`, nil, `{"id":"1","name":"ann"}`, `{"id":"2","name":"bob"}`)
	// bcctl's own calls are left out, and so is what no schema knows.
	s.calls = append(s.calls,
		&recording.Call{ID: 99, Dir: rev, Method: "grpc.reflection.v1.ServerReflection/ServerReflectionInfo"},
		&recording.Call{ID: 100, Dir: fwd, Method: "other.Service/Method"})

	out, err := recording.Script(s.calls, recording.Options{Comment: []string{"Recorded by a test."}, Types: s.src.Types()})
	if err != nil {
		t.Fatal(err)
	}
	golden.RequireEqual(t, out)
	if _, err := script.Parse(context.Background(), "recorded.yaml", out, script.Config{Upstream: s.src}); err != nil {
		t.Fatalf("the recording does not load:\n%v\n%s", err, out)
	}
}
