package script

import (
	"io"
	"testing"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

// benchCall is a reusable unary call for benchmarks.
type benchCall struct {
	*fakeCall
	req  proto.Message
	done bool
}

func (b *benchCall) Recv() (proto.Message, error) {
	if b.done {
		return nil, io.EOF
	}
	b.done = true
	return b.req, nil
}

func (b *benchCall) Send(proto.Message) error { return nil }

func benchRespond(b *testing.B, src string, md metadata.MD, req string) {
	s := parse(b, src)
	e := NewEngine(s, Upstream, Options{})
	c := newCall(b, "acme.Users/Get", md, req)
	m := c.reqs[0]
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		bc := &benchCall{fakeCall: c, req: m}
		for pb.Next() {
			bc.done = false
			if err := e.Respond(bc); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkRespondConstant is the cheapest rule: a method match and a
// reply built at load time.
func BenchmarkRespondConstant(b *testing.B) {
	benchRespond(b, `
rules:
  - match: {method: acme.Users/Get}
    reply: {id: "1", name: ann, groups: [a, b]}
`, nil, `{"id": "1"}`)
}

// BenchmarkRespondMatchAndTemplate matches metadata and the request and
// renders a templated reply, after skipping two rules that miss.
func BenchmarkRespondMatchAndTemplate(b *testing.B) {
	benchRespond(b, `
rules:
  - match: {method: acme.Users/Get, request: {id: u-2}}
    reply: {}
  - match: {method: acme.Users/Get, metadata: {x-other: {exists: true}}}
    reply: {}
  - match:
      method: acme.Users/Get
      request: {id: {re: "^u-", len: {gt: 2}}}
      metadata: {x-team: core}
    reply: {id: "${req.id}", name: "user ${req.id} of ${meta.x-team}", groups: ["${n}"]}
`, metadata.Pairs("x-team", "core"), `{"id": "u-1"}`)
}

// BenchmarkParse loads the vote-flow script.
func BenchmarkParse(b *testing.B) {
	sc := loadTestSchema(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(b.Context(), "vote.yaml", []byte(voteUpstream), Config{Upstream: sc}); err != nil {
			b.Fatal(err)
		}
	}
}
