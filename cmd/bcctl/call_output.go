package main

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/journal"
	"github.com/bcctl/bcctl/internal/script"
)

type protoMessage = proto.Message

// callRecorder keeps what happened in a forward call, for the journal and
// the JSON document.
type callRecorder struct {
	// reqMu guards requests: a bidi call's requests are read in a goroutine
	// that may outlive the call (the server ended it while bcctl waited
	// for stdin).
	reqMu     sync.Mutex
	requests  []proto.Message
	header    metadata.MD
	responses []proto.Message
	trailer   metadata.MD
	status    *status.Status
	ended     bool
}

// addRequest records a request as it is sent.
func (r *callRecorder) addRequest(m proto.Message) {
	r.reqMu.Lock()
	defer r.reqMu.Unlock()
	r.requests = append(r.requests, m)
}

// sentRequests returns the requests sent so far.
func (r *callRecorder) sentRequests() []proto.Message {
	r.reqMu.Lock()
	defer r.reqMu.Unlock()
	return append([]proto.Message(nil), r.requests...)
}

func (r *callRecorder) OnResolveMethod(protoreflect.MethodDescriptor) {}
func (r *callRecorder) OnSendHeaders(metadata.MD)                     {}
func (r *callRecorder) OnReceiveHeaders(md metadata.MD)               { r.header = md }
func (r *callRecorder) OnReceiveResponse(msg proto.Message) {
	r.responses = append(r.responses, msg)
}
func (r *callRecorder) OnReceiveTrailers(st *status.Status, md metadata.MD) {
	if st == nil { // status.Convert(nil): the call succeeded
		st = status.New(codes.OK, "")
	}
	r.status, r.trailer, r.ended = st, md, true
}

// multiHandler hands every event to each handler in turn.
type multiHandler []dynamic.InvocationEventHandler

func (m multiHandler) OnResolveMethod(md protoreflect.MethodDescriptor) {
	for _, h := range m {
		h.OnResolveMethod(md)
	}
}

func (m multiHandler) OnSendHeaders(md metadata.MD) {
	for _, h := range m {
		h.OnSendHeaders(md)
	}
}

func (m multiHandler) OnReceiveHeaders(md metadata.MD) {
	for _, h := range m {
		h.OnReceiveHeaders(md)
	}
}

func (m multiHandler) OnReceiveResponse(msg proto.Message) {
	for _, h := range m {
		h.OnReceiveResponse(msg)
	}
}

func (m multiHandler) OnReceiveTrailers(st *status.Status, md metadata.MD) {
	for _, h := range m {
		h.OnReceiveTrailers(st, md)
	}
}

// callDocument is the output of `call -o json`: the forward call as a
// journal entry, every other call of the connection (reverse calls and the
// calls the --answer script made) and the expectations.
type callDocument struct {
	journal.Entry
	// Calls are the other calls, in the order they ended.
	Calls []journal.Entry `json:"calls"`
	// Expectations is the script's report (with --answer).
	Expectations *expectationsDoc `json:"expectations,omitempty"`

	mu  sync.Mutex
	all []journal.Entry
}

// expectationsDoc is a script's report in the JSON document.
type expectationsDoc struct {
	OK      bool            `json:"ok"`
	Results []expectationRe `json:"results"`
}

type expectationRe struct {
	Name  string `json:"name"`
	Pos   string `json:"pos"`
	OK    bool   `json:"ok"`
	Count int    `json:"count"`
	Text  string `json:"text"`
}

func (d *callDocument) add(e journal.Entry) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.all = append(d.all, e)
}

func (d *callDocument) setCall(e journal.Entry) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.Entry = e
	d.Calls = []journal.Entry{}
	for _, o := range d.all {
		if o.ID != e.ID {
			d.Calls = append(d.Calls, o)
		}
	}
}

func (d *callDocument) setReport(r *script.Report) {
	if r == nil {
		return
	}
	doc := &expectationsDoc{OK: r.OK(), Results: []expectationRe{}}
	for _, res := range r.Results {
		doc.Results = append(doc.Results, expectationRe{
			Name: res.Expectation.Name, Pos: res.Expectation.Pos.String(), OK: res.OK, Count: res.Count, Text: res.String(),
		})
	}
	d.Expectations = doc
}

func (d *callDocument) write(w io.Writer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	data, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return fmt.Errorf("--output json: %w", err)
	}
	_, err = w.Write(append(data, '\n'))
	return err
}

func tlsVersionName(v uint16) string {
	switch v {
	case tls.VersionTLS13:
		return "1.3"
	case tls.VersionTLS12:
		return "1.2"
	}
	return fmt.Sprintf("0x%04x", v)
}
