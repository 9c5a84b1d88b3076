package serve

import (
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/status"

	"github.com/bcctl/bcctl/internal/calls"
)

// rawCodec sends a request's bytes as they are, so that a test can send
// what no well-behaved client would.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *v.(*[]byte), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*v.(*[]byte) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

var _ encoding.Codec = rawCodec{}

// TestCallsTheCodecRejectsAreJournaled sends forward calls that end before
// the script sees them: a request with a string field that is not UTF-8
// (the codec refuses it: INTERNAL) and one over the receive limit
// (RESOURCE_EXHAUSTED). Each is journaled and counted with the status the
// client got, and serve keeps answering.
func TestCallsTheCodecRejectsAreJournaled(t *testing.T) {
	ctx := testContext(t)
	srv, addr, journal := startServe(t, voteScript, func(c *Config) {
		c.ServerOptions = append(c.ServerOptions, grpc.MaxRecvMsgSize(1<<10))
	})
	conn := dialPlain(t, addr)
	const method = "/gitaly.OperationService/UserCreateBranch"
	// Field 3 of UserCreateBranchRequest is its branch_name (bytes), field
	// 1 its repository, whose field 2 (relative_path) is a string.
	badUTF8 := []byte{0x0a, 0x03, 0x12, 0x01, 0xff}
	huge := append([]byte{0x1a, 0x80, 0x10}, make([]byte, 2048)...) // branch_name of 2 KiB
	for i, tc := range []struct {
		name string
		req  []byte
		want codes.Code
	}{
		{"invalid UTF-8", badUTF8, codes.Internal},
		{"over the size limit", huge, codes.ResourceExhausted},
	} {
		var resp []byte
		err := conn.Invoke(ctx, method, &tc.req, &resp, grpc.ForceCodec(rawCodec{}))
		if status.Code(err) != tc.want {
			t.Fatalf("%s: %v, want %v", tc.name, err, tc.want)
		}
		// Its entry comes after the client has the status: wait for it,
		// so that the entries are in the order of the calls.
		journal.waitFor(ctx, t, i+1)
	}
	if _, st := call(t, ctx, conn, "gitaly.OperationService/UserCreateBranch", `{}`); st.Code() != codes.OK {
		t.Fatalf("a good call after the rejected ones: %v", st)
	}

	events := journal.all()
	if len(events) != 3 {
		t.Fatalf("journal: %d events, want the 2 rejected calls and the good one", len(events))
	}
	for i, want := range []codes.Code{codes.Internal, codes.ResourceExhausted, codes.OK} {
		ev := events[i].Call
		if ev.Method != "gitaly.OperationService/UserCreateBranch" || ev.Status.Code() != want || ev.Dir != calls.Forward {
			t.Errorf("event %d: %s %s %v, want the forward call with %v", i, ev.Dir, ev.Method, ev.Status.Code(), want)
		}
	}
	if st := srv.Stats(); st.ForwardCalls != 3 {
		t.Errorf("forward calls counted: %d, want 3", st.ForwardCalls)
	}
}
