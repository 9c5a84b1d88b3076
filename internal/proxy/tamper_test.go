package proxy_test

import (
	"testing"

	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/proxy"
)

// funcTamper is a Tamper from a function.
type funcTamper func(c *proxy.Call, caller proxy.Stream, relay proxy.RelayFunc) (bool, error)

func (f funcTamper) Tamper(c *proxy.Call, caller proxy.Stream, relay proxy.RelayFunc) (bool, error) {
	return f(c, caller, relay)
}

// upperStream passes a call on and changes each response's payload.
type upperStream struct {
	proxy.Stream
}

func (s upperStream) Send(b []byte) error {
	var resp testgrpc.SimpleResponse
	if err := proto.Unmarshal(b, &resp); err != nil {
		return err
	}
	resp.Payload.Body = append([]byte("changed: "), resp.Payload.Body...)
	out, err := proto.Marshal(&resp)
	if err != nil {
		return err
	}
	return s.Stream.Send(out)
}

// TestTamper: a Tamper answers calls itself, passes them on changed, or
// leaves them to the plain relay; the calls say which.
func TestTamper(t *testing.T) {
	tr := transports[0]
	ctx := testContext(t)
	u := startUpstream(t, tr, func(*backchannel.Registry) testgrpc.TestServiceServer { return newEchoService() })
	env := startProxy(t, tr, u.lis.Addr(), func(c *proxy.Config) {
		c.Tamper = funcTamper(func(c *proxy.Call, caller proxy.Stream, relay proxy.RelayFunc) (bool, error) {
			if c.Method != unaryMethod {
				return false, nil
			}
			b, err := caller.Recv()
			if err != nil {
				return true, err
			}
			var req testgrpc.SimpleRequest
			if err := proto.Unmarshal(b, &req); err != nil {
				return true, err
			}
			switch string(req.GetPayload().GetBody()) {
			case "answer":
				c.Rule = calls.RuleRef{Name: "answer"}
				return true, status.Error(codes.FailedPrecondition, "answered by the proxy")
			case "change":
				return true, relay(&replayStream{Stream: upperStream{caller}, first: b})
			}
			return true, relay(&replayStream{Stream: caller, first: b})
		})
	})
	client := testgrpc.NewTestServiceClient(dialMux(t, tr, env.lis, newEchoService()))

	if _, err := client.UnaryCall(ctx, payload("answer")); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("answered: got %v, want FAILED_PRECONDITION", err)
	}
	resp, err := client.UnaryCall(ctx, payload("change"))
	if got := string(resp.GetPayload().GetBody()); err != nil || got != "changed: change" {
		t.Errorf("changed: got %q, %v", got, err)
	}
	resp, err = client.UnaryCall(ctx, payload("pass"))
	if got := string(resp.GetPayload().GetBody()); err != nil || got != "pass" {
		t.Errorf("passed: got %q, %v", got, err)
	}
	if err := exercise(ctx, client); err != nil {
		t.Errorf("untampered calls next to tampered ones: %v", err)
	}

	ended := env.rec.endedCalls(t, 3)
	if c := ended[0]; !c.Tampered || c.EndedBy != proxy.SideProxy || !c.OutStart.IsZero() || c.Rule.Name != "answer" {
		t.Errorf("answered call: tampered %v, ended by %q, reached the upstream %v, rule %q", c.Tampered, c.EndedBy, !c.OutStart.IsZero(), c.Rule.Name)
	}
	for _, c := range ended[1:3] {
		if !c.Tampered || c.EndedBy != proxy.NoSide || c.OutStart.IsZero() || c.RequestCount != 1 || c.ResponseCount != 1 {
			t.Errorf("relayed call %d: tampered %v, ended by %q, %d requests, %d responses", c.ID, c.Tampered, c.EndedBy, c.RequestCount, c.ResponseCount)
		}
	}
}

// replayStream gives back the first message a Tamper already read.
type replayStream struct {
	proxy.Stream
	first []byte
}

func (s *replayStream) Recv() ([]byte, error) {
	if b := s.first; b != nil {
		s.first = nil
		return b, nil
	}
	return s.Stream.Recv()
}
