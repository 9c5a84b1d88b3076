package forward

import (
	"context"
	"io"
	"strings"
	"sync"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/tui/internal/mailbox"
)

// The messages of a call in flight. Each carries the number of the call it
// belongs to, so a late message of an earlier call is ignored.

// RequestErrorMsg reports requests that do not fit the input type; nothing
// was sent.
type RequestErrorMsg struct {
	Run int
	Err error
}

// StartedMsg reports that the call was started with its parsed requests.
type StartedMsg struct {
	Run      int
	Requests []proto.Message
	Headers  metadata.MD
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

// run is one call in flight.
type run struct {
	id     int
	box    *mailbox.Box
	cancel context.CancelFunc
	done   chan struct{} // closed when Invoke has returned
}

// flights are a pane's calls in flight. Every copy of the pane's Model
// shares them, so Stop can end them after the program is gone.
type flights struct {
	mu      sync.Mutex
	runs    map[*run]struct{}
	stopped bool
}

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
		r.cancel()
	}
	for _, r := range runs {
		select {
		case <-r.done:
		case <-ctx.Done():
			return
		}
	}
}

// start parses the requests (all of them, before anything is sent), then
// invokes md in a goroutine whose events go to r.box. The returned Cmd
// yields the first event.
func start(ctx context.Context, r *run, fl *flights, inv Invoker, md protoreflect.MethodDescriptor, headers metadata.MD,
	text string, resolver dynamic.TypeResolver) tea.Cmd {
	return func() tea.Msg {
		reqs, err := parseRequests(md, text, resolver)
		if err != nil {
			r.box.Close()
			return RequestErrorMsg{Run: r.id, Err: err}
		}
		if !fl.add(r) {
			r.box.Close()
			return runDoneMsg{Run: r.id}
		}
		r.box.Put(StartedMsg{Run: r.id, Requests: reqs, Headers: headers})
		go func() {
			defer r.box.Close()
			defer fl.remove(r)
			defer close(r.done)
			h := &handler{run: r, start: time.Now()}
			next := 0
			supply := func(msg proto.Message) error {
				if next >= len(reqs) {
					return io.EOF
				}
				proto.Merge(msg, reqs[next])
				next++
				return nil
			}
			if err := inv.Invoke(ctx, md, headers, h, supply); err != nil {
				r.box.Put(FailedMsg{Run: r.id, Err: err})
			}
		}()
		return r.box.Next(runDoneMsg{Run: r.id})()
	}
}

// next waits for r's next event.
func (r *run) next() tea.Cmd { return r.box.Next(runDoneMsg{Run: r.id}) }

// parseRequests reads the JSON requests: one value for a method that takes
// one request ("" means an empty message), any number of concatenated
// values for a client stream.
func parseRequests(md protoreflect.MethodDescriptor, text string, resolver dynamic.TypeResolver) ([]proto.Message, error) {
	p := dynamic.NewJSONRequestParser(strings.NewReader(text), resolver)
	var out []proto.Message
	for {
		msg := dynamicpb.NewMessage(md.Input())
		err := p.Next(msg)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		out = append(out, msg)
		if !md.IsStreamingClient() && len(out) > 1 {
			return nil, dynamic.ErrTooManyRequests
		}
	}
	if len(out) == 0 && !md.IsStreamingClient() {
		out = append(out, dynamicpb.NewMessage(md.Input()))
	}
	return out, nil
}

// handler turns invocation events into messages.
type handler struct {
	run   *run
	start time.Time
}

func (h *handler) OnResolveMethod(protoreflect.MethodDescriptor) {}
func (h *handler) OnSendHeaders(metadata.MD)                     {}
func (h *handler) OnReceiveHeaders(md metadata.MD) {
	h.run.box.Put(HeaderMsg{Run: h.run.id, MD: md})
}
func (h *handler) OnReceiveResponse(msg proto.Message) {
	h.run.box.Put(ResponseMsg{Run: h.run.id, Msg: msg})
}
func (h *handler) OnReceiveTrailers(st *status.Status, md metadata.MD) {
	if st == nil { // grpc-go's OK
		st = status.New(codes.OK, "")
	}
	h.run.box.Put(TrailerMsg{Run: h.run.id, Status: st, MD: md, Elapsed: time.Since(h.start)})
}
