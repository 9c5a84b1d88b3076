package forward

import (
	"context"
	"io"
	"sync"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/tui/internal/mailbox"
)

// The messages of a call in flight. Each carries the number of the call it
// belongs to (Run), so each event reaches its own call however many are
// in flight.

// RequestErrorMsg reports requests that do not fit the input type; nothing
// of them was sent. A call whose first requests do not fit is not made; on
// an open stream, the stream stays open.
type RequestErrorMsg struct {
	Run int
	Err error
}

// StartedMsg reports that the call was started with its parsed requests
// (those given when it started).
type StartedMsg struct {
	Run      int
	Requests []proto.Message
	Headers  metadata.MD
}

// QueuedMsg reports more requests parsed for an open stream, ready to be
// sent.
type QueuedMsg struct {
	Run      int
	Requests []proto.Message
}

// SentMsg reports one request handed to the stream.
type SentMsg struct {
	Run int
	Msg proto.Message
}

// HeaderMsg carries the response headers.
type HeaderMsg struct {
	Run int
	MD  metadata.MD
}

// ResponseMsg carries one response message, as it arrives.
type ResponseMsg struct {
	Run int
	Msg proto.Message
}

// TrailerMsg carries the call's status and trailers: the call is over.
type TrailerMsg struct {
	Run     int
	Status  *status.Status
	MD      metadata.MD
	Elapsed time.Duration
}

// FailedMsg reports that the call could not be made (Invoke's own error).
type FailedMsg struct {
	Run int
	Err error
}

// runDoneMsg ends a run's event stream.
type runDoneMsg struct{ Run int }

// endOfRequests is what the outbound queue yields once it is closed.
type endOfRequests struct{}

// run is one call in flight.
type run struct {
	id     int
	events *mailbox.Box // what happens, to the program
	out    *mailbox.Box // requests to send; closed to end sending
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when Invoke has returned
}

func newRun(id int) *run {
	ctx, cancel := context.WithCancel(context.Background())
	return &run{id: id, events: mailbox.New(), out: mailbox.New(), ctx: ctx, cancel: cancel, done: make(chan struct{})}
}

// next waits for r's next event.
func (r *run) next() tea.Cmd { return r.events.Next(runDoneMsg{Run: r.id}) }

// endSending closes the outbound queue: once the requests queued are
// sent, the stream is half-closed.
func (r *run) endSending() { r.out.Close() }

// stop cancels the call and ends sending.
func (r *run) stop() {
	r.cancel()
	r.out.Close()
}

// flights are a pane's calls in flight. Every copy of the pane's Model
// shares them, so Stop can end them after the program is gone.
type flights struct {
	mu      sync.Mutex
	runs    map[*run]struct{}
	stopped bool
}

func newFlights() *flights { return &flights{runs: map[*run]struct{}{}} }

// add registers r; false means the pane is stopped and r must not start.
func (f *flights) add(r *run) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return false
	}
	f.runs[r] = struct{}{}
	return true
}

func (f *flights) remove(r *run) {
	f.mu.Lock()
	delete(f.runs, r)
	f.mu.Unlock()
}

// stop cancels every run and waits until each has returned from Invoke
// (so an observing Invoker has reported it), or ctx is done.
func (f *flights) stop(ctx context.Context) {
	f.mu.Lock()
	f.stopped = true
	runs := make([]*run, 0, len(f.runs))
	for r := range f.runs {
		runs = append(runs, r)
	}
	f.mu.Unlock()
	for _, r := range runs {
		r.stop()
	}
	for _, r := range runs {
		select {
		case <-r.done:
		case <-ctx.Done():
			return
		}
	}
}

// call describes a call to start: what to invoke and how.
type callSpec struct {
	inv      Invoker
	method   protoreflect.MethodDescriptor
	headers  metadata.MD
	timeout  time.Duration
	text     string
	resolver dynamic.TypeResolver
}

// start parses the requests of spec (all of them, before anything is
// sent), then invokes the method in a goroutine whose events go to
// r.events. A method that takes one request gets it and the stream is
// half-closed; a client stream stays open for more until endSending. The
// returned Cmd yields the first event.
func start(r *run, fl *flights, spec callSpec) tea.Cmd {
	return func() tea.Msg {
		reqs, err := parseRequests(spec.method, spec.text, spec.resolver, !spec.method.IsStreamingClient())
		if err != nil {
			r.stop()
			r.events.Close()
			return RequestErrorMsg{Run: r.id, Err: err}
		}
		if !fl.add(r) {
			r.stop()
			r.events.Close()
			return runDoneMsg{Run: r.id}
		}
		for _, q := range reqs {
			r.out.Put(q)
		}
		if !spec.method.IsStreamingClient() {
			r.endSending()
		}
		r.events.Put(StartedMsg{Run: r.id, Requests: reqs, Headers: spec.headers})
		go r.invoke(fl, spec)
		return r.next()()
	}
}

// invoke makes the call; the requests come from r.out as they are queued.
func (r *run) invoke(fl *flights, spec callSpec) {
	defer r.events.Close()
	defer fl.remove(r)
	defer close(r.done)
	defer r.stop()
	ctx := r.ctx
	if spec.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, spec.timeout)
		defer cancel()
	}
	// When the call's time is up (or it is cancelled) nothing more is
	// sent: a supplier waiting for the person's next message returns.
	defer context.AfterFunc(ctx, r.out.Close)()
	h := &handler{run: r, start: time.Now()}
	supply := func(msg proto.Message) error {
		next, ok := r.out.Next(endOfRequests{})().(proto.Message)
		if !ok {
			return io.EOF
		}
		proto.Merge(msg, next)
		r.events.Put(SentMsg{Run: r.id, Msg: next})
		return nil
	}
	if err := spec.inv.Invoke(ctx, spec.method, spec.headers, h, supply); err != nil {
		r.events.Put(FailedMsg{Run: r.id, Err: err})
	}
}

// queue returns the Cmd that parses more requests for r's open stream.
func queue(r *run, md protoreflect.MethodDescriptor, text string, resolver dynamic.TypeResolver) tea.Cmd {
	return func() tea.Msg {
		reqs, err := parseRequests(md, text, resolver, false)
		if err != nil {
			return RequestErrorMsg{Run: r.id, Err: err}
		}
		return QueuedMsg{Run: r.id, Requests: reqs}
	}
}

// handler turns invocation events into messages.
type handler struct {
	run   *run
	start time.Time
}

func (h *handler) OnResolveMethod(protoreflect.MethodDescriptor) {}
func (h *handler) OnSendHeaders(metadata.MD)                     {}
func (h *handler) OnReceiveHeaders(md metadata.MD) {
	h.run.events.Put(HeaderMsg{Run: h.run.id, MD: md})
}
func (h *handler) OnReceiveResponse(msg proto.Message) {
	h.run.events.Put(ResponseMsg{Run: h.run.id, Msg: msg})
}
func (h *handler) OnReceiveTrailers(st *status.Status, md metadata.MD) {
	if st == nil { // grpc-go's OK
		st = status.New(codes.OK, "")
	}
	h.run.events.Put(TrailerMsg{Run: h.run.id, Status: st, MD: md, Elapsed: time.Since(h.start)})
}
