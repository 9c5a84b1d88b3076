package client

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/credentials"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/script"
	"github.com/bcctl/bcctl/sidechannel"
)

// Sidechannel is what a forward call sends and receives through its
// sidechannel (Gitaly's raw stream beside the call). Invoke registers one
// for the call, sends its ID in the gitaly-sidechannel-id metadata and
// runs it when the server opens it.
type Sidechannel struct {
	// Body is what the call sends; nil sends the script's answer's body
	// (see Answer), or nothing.
	Body io.Reader
	// Response receives what the server sends back; nil discards it (it
	// is counted and hashed all the same).
	Response io.Writer
	// Answer is the --answer script's entry for the call, when it has
	// one: its body (when Body is nil), its expect, or its fault.
	Answer *script.SidechannelAnswer
}

// ErrSidechannelNotOpened is the sidechannel error of a call whose server
// never opened the sidechannel registered for it.
var ErrSidechannelNotOpened = errors.New("the server did not open the call's sidechannel")

// SidechannelAnswer returns the --answer script's sidechannel entry for
// method ("pkg.Service/Method"), or nil.
func (s *Session) SidechannelAnswer(method string) *script.SidechannelAnswer {
	if s.engine == nil || !s.hasScript {
		return nil
	}
	return s.engine.Script().SidechannelAnswer(method)
}

// sidechannelCall is one forward call's sidechannel while it runs.
type sidechannelCall struct {
	spec   *Sidechannel
	env    func(string) string
	waiter *sidechannel.Waiter
	record calls.Sidechannel
	body   *script.StreamData
	resp   *script.StreamData
	start  time.Time
	opened time.Time // when the callback started; zero if it never did
}

// startSidechannel registers the call's sidechannel and returns the
// context to call with.
func (s *Session) startSidechannel(ctx context.Context, spec *Sidechannel) (context.Context, *sidechannelCall, error) {
	if s.sidechannels == nil {
		return ctx, nil, errors.New("a sidechannel needs a multiplexed connection (leave out --no-mux)")
	}
	sc := &sidechannelCall{spec: spec, env: s.cfg.Env, start: time.Now()}
	if spec.Answer != nil {
		sc.record.Fault = spec.Answer.Fault
	}
	ctx, sc.waiter = sidechannel.RegisterSidechannel(ctx, s.sidechannels.registry, sc.run)
	sc.record.ID = sc.waiter.ID()
	sc.body, sc.resp = script.NewStreamData(sc.record.ID), script.NewStreamData(sc.record.ID)
	if sc.record.Fault != "" {
		s.sidechannels.setFault(sc.record.ID, sc.record.Fault)
	}
	return ctx, sc, nil
}

// run is the sidechannel's callback: it sends the body while it reads the
// response.
func (sc *sidechannelCall) run(c *sidechannel.ClientConn) error {
	sc.opened = time.Now()
	sent := make(chan error, 1)
	go func() {
		err := sc.writeBody(io.MultiWriter(c, sc.body))
		if err == nil {
			err = c.CloseWrite()
		}
		sent <- err
	}()
	response := io.Writer(sc.resp)
	if sc.spec.Response != nil {
		response = io.MultiWriter(sc.spec.Response, sc.resp)
	}
	_, readErr := io.Copy(response, c)
	if readErr != nil {
		// The server cut the response short: the body may never be read.
		c.Close()
	}
	return errors.Join(<-sent, readErr)
}

func (sc *sidechannelCall) writeBody(w io.Writer) error {
	switch {
	case sc.spec.Body != nil:
		_, err := io.Copy(w, sc.spec.Body)
		return err
	case sc.spec.Answer != nil && sc.spec.Answer.HasBody():
		return sc.spec.Answer.WriteBody(w, sc.env)
	}
	return nil
}

// finish waits for the sidechannel after the call and records it; the
// error is the sidechannel's own (never ErrSidechannelNotOpened for a
// fault, which keeps the sidechannel from running on purpose).
func (s *Session) finishSidechannel(sc *sidechannelCall) (*calls.Sidechannel, error) {
	err := sc.waiter.Close()
	s.sidechannels.endFault(sc.record.ID)
	fault, rec := sc.record.Fault, sc.record
	rec.BodyBytes, rec.BodySHA256 = sc.body.Size(), sc.body.SHA256()
	rec.ResponseBytes, rec.ResponseSHA256 = sc.resp.Size(), sc.resp.SHA256()
	if !sc.opened.IsZero() {
		rec.Duration = time.Since(sc.opened)
	}
	switch {
	case fault != "":
		err = nil
		if rec.BodyBytes == 0 {
			rec.BodySHA256 = ""
		}
		rec.ResponseSHA256 = ""
	case errors.Is(err, sidechannel.ErrCallbackNotRun):
		err = ErrSidechannelNotOpened
	case err == nil && sc.spec.Answer != nil:
		err = sc.spec.Answer.Check(sc.resp)
	}
	if err != nil {
		rec.Err = err.Error()
	}
	return &rec, err
}

// sidechannelRouter takes the sidechannel streams the server opens on the
// session's connection: to the waiting call (sidechannel.ServerHandshaker),
// or, for a call whose --answer script injects a fault, to the fault.
type sidechannelRouter struct {
	registry   *sidechannel.Registry
	handshaker *sidechannel.ServerHandshaker

	mu     sync.Mutex
	faults map[int64]string   // pending faults by sidechannel ID
	held   map[int64]net.Conn // never-ack streams, closed when their call ends
}

func newSidechannelRouter() *sidechannelRouter {
	reg := sidechannel.NewRegistry()
	return &sidechannelRouter{
		registry: reg, handshaker: sidechannel.NewServerHandshaker(reg),
		faults: map[int64]string{}, held: map[int64]net.Conn{},
	}
}

// Magic returns "sidechannel".
func (r *sidechannelRouter) Magic() string { return r.handshaker.Magic() }

// Handshake reads the stream's ID and hands the stream on.
func (r *sidechannelRouter) Handshake(conn net.Conn, info credentials.AuthInfo) (net.Conn, credentials.AuthInfo, error) {
	var id [8]byte
	if _, err := io.ReadFull(conn, id[:]); err != nil {
		return nil, nil, fmt.Errorf("sidechannel: read ID: %w", err)
	}
	n := int64(binary.BigEndian.Uint64(id[:]))
	r.mu.Lock()
	fault := r.faults[n]
	delete(r.faults, n)
	if fault == script.FaultNeverAck {
		r.held[n] = conn
	}
	r.mu.Unlock()
	switch fault {
	case "":
		return r.handshaker.Handshake(readerConn{Conn: conn, r: io.MultiReader(bytes.NewReader(id[:]), conn)}, info)
	case script.FaultNeverAck:
		// Say nothing; the stream is closed when the call ends.
	case script.FaultBadFraming:
		io.WriteString(conn, "ok"+strings.Repeat("z", 4))
		conn.Close()
	case script.FaultCloseEarly:
		io.WriteString(conn, "ok")
		conn.Close()
	}
	return nil, nil, credentials.ErrConnDispatched
}

// setFault makes the stream of sidechannel id inject fault.
func (r *sidechannelRouter) setFault(id int64, fault string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.faults[id] = fault
}

// endFault forgets the fault of id (the server may never have opened
// the stream) and closes the stream it holds.
func (r *sidechannelRouter) endFault(id int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.faults, id)
	if c, ok := r.held[id]; ok {
		c.Close()
		delete(r.held, id)
	}
}

// readerConn is a connection whose reads come from r (the ID read back,
// then the stream).
type readerConn struct {
	net.Conn
	r io.Reader
}

func (c readerConn) Read(p []byte) (int, error) { return c.r.Read(p) }
