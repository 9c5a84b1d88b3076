package main

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/proxy"
	"github.com/bcctl/bcctl/internal/serve"
	"github.com/bcctl/bcctl/internal/words"
)

// proxyWatch is the proxy's Observer in bcctl proxy: it turns what the
// proxy relays into journal entries, records them in the hub (which
// writes --journal and serves them to the admin API and the TUI), prints
// them, and counts them for the last line. It runs in the
// goroutines of the calls, before a call's status goes back to its caller,
// so no entry is lost when a connection drops or the proxy stops.
type proxyWatch struct {
	decoder *proxy.Decoder
	hub     *serve.Hub     // journals the entries (--journal), and serves them to the admin API and the TUI
	printer *proxyPrinter  // nil with -o none or --tui
	record  *proxyRecorder // nil without --record
	tamper  *proxyTamper   // nil without --script
	started time.Time
	// held orders each connection's entries while some wait for the
	// connection's backchannel schema (decoder.Pending).
	held entryQueues

	conns, forward, reverse, streams atomic.Uint64
}

var _ proxy.Observer = (*proxyWatch)(nil)

func (w *proxyWatch) ConnOpened(c *proxy.Conn) {
	w.conns.Add(1)
	if c.Kind == proxy.Plain {
		w.hub.PlainClientJoined()
	}
	if w.printer != nil {
		w.printer.connOpened(c)
	}
}

func (w *proxyWatch) ConnClosed(c *proxy.Conn, by proxy.Side) {
	if c.Kind == proxy.Plain {
		w.hub.PlainClientLeft()
	}
	w.held.add(c.ID, nil, func() {
		if w.decoder.Clients != nil {
			w.decoder.Clients.Forget(c)
		}
		if w.printer != nil {
			w.printer.connClosed(c, by)
		}
	})
}

func (w *proxyWatch) CallStarted(c *proxy.Call) {
	w.decoder.Prefetch(c)
	if w.printer != nil {
		w.printer.callStarted(c)
	}
}

// CallEnded counts the call at once (for the expectations and the last
// line); its entry goes to the journal, the printer and --record once its
// messages can be decoded, which for a reverse call into a client whose
// schema the proxy is learning is when the client has answered.
func (w *proxyWatch) CallEnded(c *proxy.Call) {
	if c.Dir == calls.Reverse {
		w.reverse.Add(1)
	} else {
		w.forward.Add(1)
	}
	if w.tamper != nil && !c.Tampered {
		w.tamper.count(c)
	}
	ctx := context.Background()
	w.held.add(c.Conn.ID, w.decoder.Pending(ctx, c), func() {
		if w.record != nil {
			w.record.add(c)
		}
		e := w.decoder.Entry(ctx, c)
		w.hub.Add(proxyEvent(c, e))
		if w.printer != nil {
			w.printer.entry(e)
		}
	})
}

func (w *proxyWatch) SideStreamEnded(s *proxy.SideStream) {
	w.streams.Add(1)
	w.held.add(s.Conn.ID, nil, func() {
		e := w.decoder.StreamEntry(s)
		w.hub.Add(proxyStreamEvent(s, e))
		if w.printer != nil {
			w.printer.entry(e)
		}
	})
}

// flush returns once every entry held back has been delivered; the
// proxy has shut down and stopped learning schemas.
func (w *proxyWatch) flush() { w.held.flush() }

// summary counts what the proxy relayed, for its last line.
func (w *proxyWatch) summary() string {
	parts := []string{
		words.Count(w.conns.Load(), "client connection"),
		fmt.Sprintf("%d forward and %d reverse calls relayed", w.forward.Load(), w.reverse.Load()),
		words.Count(w.streams.Load(), "side stream"),
	}
	if w.tamper != nil {
		if n := w.tamper.madeCalls.Load(); n > 0 {
			parts = append(parts, words.Count(n, "call")+" made by the script")
		}
	}
	return strings.Join(parts, ", ")
}
