package proxy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/internal/dynamic"
)

// ClientSchemas learns the schema of the services each multiplexed client
// offers on its backchannel, by reflection over that backchannel (bcctl
// hosts reflection there, and so may a client like Praefect), for decoding
// the reverse calls into it when no schema the proxy was given knows their
// methods. Each connection is asked at most once, when first asked for
// (Learn), in a goroutine of its own: nothing waits for it but those who
// choose to (Done). What it learnt is kept while the connection is open,
// as a schema of its own that no longer needs the connection.
//
// At most clientSchemaConcurrency connections are asked at once, each for
// at most its timeout. A ClientSchemas is safe for concurrent use.
type ClientSchemas struct {
	reg     *backchannel.Registry
	timeout time.Duration
	slots   chan struct{}

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// mu guards conns.
	mu    sync.Mutex
	conns map[uint64]*ClientSchema // by Conn.ID
}

// clientSchemaConcurrency bounds the reflection requests in flight.
const clientSchemaConcurrency = 16

// ErrNoBackchannel is the Err of the schema of a plain client, which has
// no backchannel to ask.
var ErrNoBackchannel = errors.New("the client has no backchannel (it connected as a plain gRPC client)")

// NewClientSchemas returns a ClientSchemas over p's clients; each
// connection's reflection may take timeout (default 10s). Close it when
// the proxy has shut down.
func NewClientSchemas(p *Proxy, timeout time.Duration) *ClientSchemas {
	if timeout <= 0 {
		timeout = defaultConnectTimeout
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &ClientSchemas{
		reg: p.Clients(), timeout: timeout, slots: make(chan struct{}, clientSchemaConcurrency),
		ctx: ctx, cancel: cancel, conns: map[uint64]*ClientSchema{},
	}
}

// ClientSchema is what reflection over one client's backchannel found, or
// will have found once Done is closed.
type ClientSchema struct {
	done chan struct{}
	// src and err are set before done is closed.
	src dynamic.Source
	err error
}

// Done is closed once the client has answered (or failed to).
func (s *ClientSchema) Done() <-chan struct{} { return s.done }

// Source returns the schema learnt: nil while Done is open, and when the
// client could not be asked or serves no reflection (Err says why).
func (s *ClientSchema) Source() dynamic.Source {
	select {
	case <-s.done:
		return s.src
	default:
		return nil
	}
}

// Err says why Source is nil once Done is closed (dynamic.ErrReflectionNotSupported
// for a client that serves no reflection).
func (s *ClientSchema) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// Learn returns the schema of c's backchannel, asking the client for it
// the first time c is named. It never waits.
func (s *ClientSchemas) Learn(c *Conn) *ClientSchema {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cs, ok := s.conns[c.ID]; ok {
		return cs
	}
	cs := &ClientSchema{done: make(chan struct{})}
	s.conns[c.ID] = cs
	switch {
	case c.Kind != Multiplexed:
		cs.err = ErrNoBackchannel
	case s.ctx.Err() != nil:
		cs.err = fmt.Errorf("the proxy is stopping: %w", s.ctx.Err())
	}
	if cs.err != nil {
		close(cs.done)
		return cs
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(cs.done)
		cs.src, cs.err = s.reflect(c)
	}()
	return cs
}

// Learnt returns the schema of c's backchannel if Learn was asked for it;
// it never asks the client.
func (s *ClientSchemas) Learnt(c *Conn) (*ClientSchema, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs, ok := s.conns[c.ID]
	return cs, ok
}

// Forget drops what was learnt of c (its connection has closed).
func (s *ClientSchemas) Forget(c *Conn) {
	s.mu.Lock()
	delete(s.conns, c.ID)
	s.mu.Unlock()
}

// Close cancels the reflection requests in flight and waits for them;
// their schemas end with the error. Learn asks no client afterwards.
func (s *ClientSchemas) Close() {
	s.cancel()
	s.wg.Wait()
}

// reflect asks c's backchannel for every service it offers and the files
// that describe them.
func (s *ClientSchemas) reflect(c *Conn) (dynamic.Source, error) {
	conn, err := s.reg.Backchannel(backchannel.ID(c.PeerID))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.timeout)
	defer cancel()
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting to ask client %d: %w", c.ID, context.Cause(ctx))
	}
	refl := dynamic.NewSourceFromReflection(ctx, conn, nil)
	defer refl.Close()
	names, err := refl.ListServices(ctx)
	if err != nil {
		return nil, err
	}
	var files []protoreflect.FileDescriptor
	for _, n := range names {
		if strings.HasPrefix(string(n), "grpc.reflection.") {
			continue // the means, not the offer
		}
		d, err := refl.FindSymbol(ctx, string(n))
		if err != nil {
			return nil, err
		}
		files = append(files, d.ParentFile())
	}
	return dynamic.NewSourceFromFiles(files...)
}
