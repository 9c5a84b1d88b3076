package main

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"slices"
	"sync"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/proxy"
	"github.com/bcctl/bcctl/internal/recording"
)

// proxyRecorder keeps the calls of the session for --record, and writes
// the script that replays them when the proxy stops. It holds every
// call's messages (up to the proxy's per-call limit) until then.
type proxyRecorder struct {
	path    string
	decoder *proxy.Decoder

	mu    sync.Mutex
	calls []recordedCall
}

// recordedCall is a call kept, with its method's descriptor (nil when no
// schema knew it).
type recordedCall struct {
	c  *proxy.Call
	md protoreflect.MethodDescriptor
}

// add keeps c; its method is looked up now, while the upstream (whose
// reflection may be the schema) and c's client (whose backchannel's may
// be) are there.
func (r *proxyRecorder) add(c *proxy.Call) {
	md := r.decoder.Method(context.Background(), c)
	r.mu.Lock()
	r.calls = append(r.calls, recordedCall{c: c, md: md})
	r.mu.Unlock()
}

// write writes the recording; what described where it was made heads it.
func (r *proxyRecorder) write(ctx context.Context, about string) error {
	r.mu.Lock()
	cs := slices.Clone(r.calls)
	r.mu.Unlock()
	slices.SortFunc(cs, func(a, b recordedCall) int { return cmp.Compare(a.c.ID, b.c.ID) })

	session := make([]*recording.Call, 0, len(cs))
	var undecoded []string
	for _, k := range cs {
		rc, err := r.recorded(k)
		if err != nil {
			undecoded = append(undecoded, fmt.Sprintf("#%d %s: %v", k.c.ID, proxy.MethodName(k.c), err))
		}
		session = append(session, rc)
	}
	comment := []string{
		about,
		"Replay the upstream: bcctl serve --proto/--protoset SCHEMA --script " + r.path,
		"Replay the client:   bcctl call/connect ... --answer " + r.path,
	}
	for _, u := range undecoded {
		comment = append(comment, "Left out, its messages did not parse: "+u)
	}
	out, err := recording.Script(session, recording.Options{Comment: comment, Types: r.decoder.Types(calls.Forward)})
	if err != nil {
		return err
	}
	if err := os.WriteFile(r.path, out, 0o644); err != nil {
		return fmt.Errorf("--record: %w", err)
	}
	return nil
}

// recorded returns c as the recording needs it: with its method's
// descriptor and its messages parsed (no descriptor when no schema knows
// the method, or a message does not parse).
func (r *proxyRecorder) recorded(k recordedCall) (*recording.Call, error) {
	c, md := k.c, k.md
	rc := &recording.Call{
		ID: c.ID, Cause: c.Cause, Dir: c.Dir, Method: proxy.MethodName(c),
		Metadata: c.Metadata, Header: c.Header, Trailer: c.Trailer, Status: c.Status,
	}
	if md == nil {
		return rc, nil
	}
	var err error
	if rc.Requests, err = r.decoder.Messages(c.Dir, md.Input(), c.Requests); err != nil {
		return rc, err
	}
	if rc.Responses, err = r.decoder.Messages(c.Dir, md.Output(), c.Responses); err != nil {
		return rc, err
	}
	rc.Desc = md
	return rc, nil
}

// proxyRecordedAbout says where a session was recorded. (Not when: a
// recording of the same session is the same file.)
func proxyRecordedAbout(plan *proxyPlan) string {
	return fmt.Sprintf("Recorded by bcctl proxy in front of %s.", plan.upstream)
}
