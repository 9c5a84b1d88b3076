package dynamic

import (
	"context"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

// supply returns a RequestSupplier over JSON documents.
func supply(src Source, docs ...string) RequestSupplier {
	return NewJSONRequestParser(strings.NewReader(strings.Join(docs, "\n")), src.Types()).Next
}

func responsesJSON(t *testing.T, r *recorder) []string {
	t.Helper()
	var out []string
	for _, m := range r.responses {
		out = append(out, toJSON(t, m))
	}
	return out
}

func TestInvokeEveryCallKind(t *testing.T) {
	eachSource(t, func(t *testing.T, src Source) {
		cc := dial(t, startServer(t, corpusResponder()))
		ctx := testContext(t)
		tests := []struct {
			name      string
			method    string
			headers   metadata.MD
			requests  []string
			want      []string
			wantCode  codes.Code
			wantInErr string // in FormatStatus output
		}{
			{name: "unary", method: "acme.Users/Get", headers: metadata.Pairs("x-test", "hi"),
				requests: []string{`{"id": "42"}`}, want: []string{`{"id":"42","name":"user 42"}`}},
			{name: "unary error with ErrorInfo", method: "acme.Users/Get", requests: []string{`{"id": "missing"}`},
				wantCode: codes.NotFound, wantInErr: `"reason": "USER_NOT_FOUND"`},
			{name: "unary without requests sends an empty message", method: "acme.Users/Create",
				wantCode: codes.InvalidArgument, wantInErr: `"field": "user.name"`},
			{name: "unary error with schema detail", method: "acme.Users/Create", requests: []string{`{"user": {"name": "taken"}}`},
				wantCode: codes.AlreadyExists, wantInErr: `"@type": "type.googleapis.com/acme.UserConflict",`},
			{name: "unary with WKTs", method: "acme.Users/Create",
				requests: []string{`{"user": {"name": "ann", "createdAt": "2024-01-02T03:04:05Z", "attributes": {"k": [1, "x"]}, "nickname": "", "labels": {"a": "b"}}}`},
				want:     []string{`{"id":"new","name":"ann","createdAt":"2024-01-02T03:04:05Z","attributes":{"k":[1,"x"]},"labels":{"a":"b"},"nickname":""}`}},
			{name: "server streaming", method: "acme.Users/List", requests: []string{`{"limit": 4}`},
				want: []string{`{"id":"u1"}`, `{"id":"u2"}`, `{"id":"u3"}`, `{"id":"u4"}`}},
			{name: "client streaming", method: "acme.Users/Import", requests: []string{`{"id": "a"}`, `{"id": "b"}`, `{"id": "a"}`},
				want: []string{`{"imported":2,"skippedIds":["a"]}`}},
			{name: "client streaming without requests", method: "acme.Users/Import", want: []string{`{}`}},
			{name: "bidi", method: "acme.Users/Chat", requests: []string{`{"text": "one"}`, `{"text": "two"}`},
				want: []string{`{"from":"server","text":"echo: one"}`, `{"from":"server","text":"echo: two"}`}},
			{name: "unimplemented", method: "gitaly.OperationService/UserDeleteBranch", wantCode: codes.Unimplemented,
				wantInErr: "corpusResponder does not answer gitaly.OperationService/UserDeleteBranch"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				rec := &recorder{}
				err := InvokeRPC(ctx, src, cc, tc.method, tc.headers, rec, supply(src, tc.requests...))
				if err != nil {
					t.Fatalf("InvokeRPC: %v", err)
				}
				if rec.status.Code() != tc.wantCode {
					t.Fatalf("status = %v, want %v", rec.status.Err(), tc.wantCode)
				}
				if got := responsesJSON(t, rec); !reflect.DeepEqual(got, tc.want) {
					t.Errorf("responses = %q, want %q", got, tc.want)
				}
				if tc.wantInErr != "" {
					if got := FormatStatus(rec.status, src.Types()); !strings.Contains(got, tc.wantInErr) {
						t.Errorf("FormatStatus = %s\nwant it to contain %s", got, tc.wantInErr)
					}
				}
				if MethodName(rec.method) != strings.TrimPrefix(tc.method, "/") {
					t.Errorf("OnResolveMethod got %s", MethodName(rec.method))
				}
			})
		}
	})
}

func TestInvokeHeadersAndTrailers(t *testing.T) {
	src := protosetSource(t)
	cc := dial(t, startServer(t, corpusResponder()))
	rec := &recorder{}
	ctx := metadata.AppendToOutgoingContext(testContext(t), "x-from-context", "yes")
	err := InvokeRPC(ctx, src, cc, "acme.Users/Get", metadata.Pairs("x-test", "hello"), rec, supply(src, `{"id": "1"}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := rec.headers.Get("x-echo"); len(got) != 1 || got[0] != "hello" {
		t.Errorf("header x-echo = %q, want hello", got)
	}
	if got := rec.trailers.Get("x-trailer"); len(got) != 1 || got[0] != "done" {
		t.Errorf("trailer x-trailer = %q, want done", got)
	}
	if got := rec.sent.Get("x-test"); len(got) != 1 {
		t.Errorf("OnSendHeaders got %v", rec.sent)
	}
	want := []string{"resolve", "send-headers", "headers", "response", "trailers"}
	if !reflect.DeepEqual(rec.order, want) {
		t.Errorf("events = %v, want %v", rec.order, want)
	}
}

// Bidi streaming is full duplex: the second request is only supplied once
// the response to the first has been delivered.
func TestInvokeBidiIsFullDuplex(t *testing.T) {
	eachSource(t, func(t *testing.T, src Source) {
		cc := dial(t, startServer(t, corpusResponder()))
		ctx, cancel := context.WithTimeout(testContext(t), 10*time.Second)
		defer cancel()
		got := make(chan proto.Message, 10)
		rec := &recorder{onResp: func(m proto.Message) { got <- m }}
		n := 0
		requests := func(m proto.Message) error {
			if n > 0 {
				select {
				case <-got: // the previous request's echo arrived
				case <-ctx.Done():
					return errors.New("no response before the next request: not full duplex")
				}
			}
			if n == 3 {
				return io.EOF
			}
			n++
			return ParseJSON([]byte(`{"text": "line"}`), m, src.Types())
		}
		md, err := FindMethod(ctx, src, "acme.Users/Chat")
		if err != nil {
			t.Fatal(err)
		}
		if err := Invoke(ctx, cc, md, nil, rec, requests); err != nil {
			t.Fatal(err)
		}
		if rec.status.Code() != codes.OK || len(rec.responses) != 3 {
			t.Errorf("status %v, %d responses; want OK and 3", rec.status.Err(), len(rec.responses))
		}
	})
}

func TestInvokeInvocationErrors(t *testing.T) {
	src := filesSource(t)
	cc := dial(t, startServer(t, corpusResponder()))
	ctx := testContext(t)

	err := InvokeRPC(ctx, src, cc, "acme.Users/Get", nil, &recorder{}, supply(src, `{"id": "1"}`, `{"id": "2"}`))
	if !errors.Is(err, ErrTooManyRequests) {
		t.Errorf("two requests to a unary method: %v, want ErrTooManyRequests", err)
	}
	err = InvokeRPC(ctx, src, cc, "acme.Users/Import", nil, &recorder{}, supply(src, `{"id": "1"}`, `{"id": 2}`))
	if err == nil || !strings.Contains(err.Error(), `request 2: field "id"`) {
		t.Errorf("bad second request: %v", err)
	}
	rec := &recorder{}
	err = InvokeRPC(ctx, src, cc, "acme.Users/Chat", nil, rec, supply(src, `{"text": "1"}`, `{"txt": "2"}`))
	if err == nil || !strings.Contains(err.Error(), `request 2: field "txt": unknown field`) {
		t.Errorf("bad bidi request: %v", err)
	}
	if rec.status == nil || rec.status.Code() != codes.Canceled {
		t.Errorf("bad bidi request: call status %v, want Canceled", rec.status)
	}
	err = InvokeRPC(ctx, src, cc, "acme.Users/Gte", nil, &recorder{}, nil)
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `did you mean "acme.Users/Get"`) {
		t.Errorf("unknown method: %v", err)
	}
}

func TestInvokeUnreachableServer(t *testing.T) {
	src := protosetSource(t)
	cc := dial(t, "127.0.0.1:1")
	for _, method := range []string{"acme.Users/Get", "acme.Users/List", "acme.Users/Import", "acme.Users/Chat"} {
		rec := &recorder{}
		if err := InvokeRPC(testContext(t), src, cc, method, nil, rec, nil); err != nil {
			t.Errorf("%s: %v", method, err)
		}
		if rec.status.Code() != codes.Unavailable {
			t.Errorf("%s: status %v, want Unavailable", method, rec.status.Err())
		}
	}
}

func TestPrintingHandler(t *testing.T) {
	src := protosetSource(t)
	cc := dial(t, startServer(t, corpusResponder()))
	var out strings.Builder
	f, _ := NewFormatter(FormatJSON, src.Types(), FormatOptions{})
	h := &PrintingHandler{Out: &out, Formatter: f}
	if err := InvokeRPC(testContext(t), src, cc, "acme.Users/List", nil, h, supply(src, `{"limit": 2}`)); err != nil {
		t.Fatal(err)
	}
	want := "{\n  \"id\": \"u1\"\n}\n{\n  \"id\": \"u2\"\n}\n"
	if out.String() != want || h.NumResponses != 2 || h.Status.Code() != codes.OK {
		t.Errorf("output %q (%d responses, %v), want %q", out.String(), h.NumResponses, h.Status.Err(), want)
	}

	out.Reset()
	h = &PrintingHandler{Out: &out, Formatter: f, Verbosity: 2}
	if err := InvokeRPC(testContext(t), src, cc, "acme.Users/Get", metadata.Pairs("x-test", "v"), h, supply(src, `{"id": "3"}`)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Resolved method descriptor:\n// Get returns one user.",
		"Request metadata to send:\nx-test: v\n",
		"Response headers received:\ncontent-type: application/grpc\nx-echo: v\n",
		"Response contents:\n{\n  \"id\": \"3\",\n  \"name\": \"user 3\"\n}\n",
		"Response trailers received:\nx-trailer: done\n",
		"Received 1 response.\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("verbose output lacks %q:\n%s", want, out.String())
		}
	}

	out.Reset()
	tf, _ := NewFormatter(FormatText, src.Types(), FormatOptions{Compact: true})
	h = &PrintingHandler{Out: &out, Formatter: tf, Text: true}
	if err := InvokeRPC(testContext(t), src, cc, "acme.Users/List", nil, h, supply(src, `{"limit": 2}`)); err != nil {
		t.Fatal(err)
	}
	if got := strings.ReplaceAll(out.String(), " ", ""); got != "id:\"u1\"\n\x1eid:\"u2\"\n" {
		t.Errorf("text output %q", out.String())
	}
}
