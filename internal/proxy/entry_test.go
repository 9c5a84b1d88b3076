package proxy_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/journal"
	"github.com/bcctl/bcctl/internal/proxy"
)

// TestEntries: the journal entries of a vote flow, decoded where the
// schema knows the method and kept as base64 where it does not.
func TestEntries(t *testing.T) {
	tr := transports[0]
	ctx := testContext(t)
	u := newVotingUpstream(t, tr)
	env := startProxy(t, tr, u.lis.Addr())
	cc := dialMux(t, tr, env.lis, &voter{name: "praefect"})
	callCtx := metadata.AppendToOutgoingContext(ctx, "x-transaction", "7")
	if _, err := testgrpc.NewTestServiceClient(cc).UnaryCall(callCtx, payload("hi")); err != nil {
		t.Fatal(err)
	}
	fwd := env.rec.endedCall(t, unaryMethod, func(c *proxy.Call) bool { return c.Dir == calls.Forward })
	rev := env.rec.endedCall(t, unaryMethod, func(c *proxy.Call) bool { return c.Dir == calls.Reverse })

	schema, err := dynamic.NewSourceFromFiles(testgrpc.File_grpc_testing_test_proto)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		dec     *proxy.Decoder
		request string
	}{
		{"schema", &proxy.Decoder{Forward: schema}, `{"payload":{"body":"aGk="}}`},
		{"no schema", &proxy.Decoder{}, `{"@wire":"GgQSAmhp"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := tc.dec.Entry(context.Background(), fwd)
			if e.Method != "grpc.testing.TestService/UnaryCall" || e.Dir != journal.DirForward || e.Origin != journal.OriginRelayed {
				t.Errorf("entry: method %q, dir %q, origin %q", e.Method, e.Dir, e.Origin)
			}
			if len(e.Requests) != 1 || string(e.Requests[0]) != tc.request {
				t.Errorf("requests: got %s, want [%s]", e.Requests, tc.request)
			}
			if e.Relay == nil || e.Relay.Conn != fwd.Conn.ID || e.Relay.CalleeMS <= 0 || e.Relay.RequestCount != 1 {
				t.Errorf("relay: %+v", e.Relay)
			}
			if e.Peer == nil || e.Peer.ID != fwd.Conn.PeerID || e.Peer.ID == 0 {
				t.Errorf("peer: %+v, want the client's backchannel ID %d", e.Peer, fwd.Conn.PeerID)
			}
			r := tc.dec.Entry(context.Background(), rev)
			if r.Cause != e.ID || r.Dir != journal.DirReverse {
				t.Errorf("reverse entry: cause %d, dir %q; want cause %d", r.Cause, r.Dir, e.ID)
			}
			line, err := json.Marshal(e)
			if err != nil || !strings.Contains(string(line), `"metadata":{`) || !strings.Contains(string(line), `"x-transaction":["7"]`) {
				t.Errorf("line %s (%v)", line, err)
			}
		})
	}
}
