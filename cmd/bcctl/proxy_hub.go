package main

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bcctl/bcctl/internal/admin"
	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/journal"
	"github.com/bcctl/bcctl/internal/proxy"
	"github.com/bcctl/bcctl/internal/script"
	"github.com/bcctl/bcctl/internal/serve"
)

// proxyBackend is what the admin API serves for bcctl proxy: the proxy's
// hub (its clients, its journal, reverse calls into a client's
// backchannel), with the proxy's schema and script.
type proxyBackend struct {
	*serve.Hub
	schema dynamic.Source
	tamper *proxyTamper // nil without --script
}

var _ admin.Backend = proxyBackend{}

// Schema is the schema the proxy decodes forward calls with.
func (b proxyBackend) Schema() dynamic.Source { return b.schema }

// ScriptState names --script, if there is one.
func (b proxyBackend) ScriptState() serve.ScriptState {
	if b.tamper == nil {
		return serve.ScriptState{}
	}
	return serve.ScriptState{Name: b.tamper.forward.Script().Name}
}

// Check evaluates --script's expectations (none without a script).
func (b proxyBackend) Check() *script.Report {
	if b.tamper == nil {
		return &script.Report{}
	}
	return b.tamper.forward.Check()
}

// proxyService is the proxy as serve.Run runs it: once the proxy has shut
// down, it stops learning the clients' schemas, delivers the entries that
// waited for them, and closes the hub, which ends the journal streams of
// the admin API and the TUI before Run stops those.
type proxyService struct {
	*proxy.Proxy
	hub   *serve.Hub
	watch *proxyWatch
}

func (s proxyService) Shutdown(ctx context.Context) error {
	err := s.Proxy.Shutdown(ctx)
	if clients := s.watch.decoder.Clients; clients != nil {
		clients.Close()
	}
	s.watch.flush()
	s.hub.Close()
	return err
}

// proxyEvent is a relayed call as the hub records it: its entry, rendered
// by the proxy's decoder, and what journal filters and the peers'
// counters read.
func proxyEvent(c *proxy.Call, e journal.Entry) *serve.Event {
	st := c.Status
	if st == nil {
		st = status.New(codes.OK, "")
	}
	ev := &calls.Event{
		ID: c.ID, Cause: c.Cause, Dir: c.Dir, Origin: calls.Answered,
		Peer:   calls.Peer{Addr: addrOrUnknown(c.Conn.ClientAddr), BackchannelID: c.Conn.PeerID},
		Method: e.Method, Metadata: c.Metadata, Header: c.Header, Trailer: c.Trailer,
		Status: st, Start: c.Start, Duration: c.Duration(), Rule: c.Rule,
	}
	var by serve.Maker
	if !c.Rule.IsZero() {
		by = serve.ByScript
	}
	return serve.EventOf(e, ev, by)
}

// proxyStreamEvent is a side stream as the hub records it: no call, so
// no method.
func proxyStreamEvent(s *proxy.SideStream, e journal.Entry) *serve.Event {
	ev := &calls.Event{
		ID: s.ID, Cause: s.Cause, Dir: calls.Reverse, Origin: calls.Answered,
		Peer:   calls.Peer{Addr: addrOrUnknown(s.Conn.ClientAddr), BackchannelID: s.Conn.PeerID},
		Status: status.New(codes.OK, ""), Start: s.Start, Duration: s.Duration(),
	}
	return serve.EventOf(e, ev, "")
}
