package dynamic

import (
	"encoding/base64"
	"fmt"
	"io"
	"sort"
	"strings"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/bcctl/bcctl/internal/words"
)

// PrintingHandler is an InvocationEventHandler that writes what happens to
// Out, like grpcurl's default handler: responses always; with Verbosity 1
// also the method, request and response headers and trailers; with 2 also
// the response count. It records the final status for the caller's exit
// code. Format responses with Formatter (for FormatText, messages are
// separated by TextSeparator as grpcurl does).
type PrintingHandler struct {
	Out       io.Writer
	Formatter Formatter
	// Text separates consecutive responses with TextSeparator.
	Text      bool
	Verbosity int

	// NumResponses counts the responses received.
	NumResponses int
	// Status is the call's final status, set by OnReceiveTrailers.
	Status *status.Status
	// Err is the first error formatting or writing a response.
	Err error
}

var _ InvocationEventHandler = (*PrintingHandler)(nil)

// OnResolveMethod implements InvocationEventHandler.
func (h *PrintingHandler) OnResolveMethod(md protoreflect.MethodDescriptor) {
	if h.Verbosity > 0 {
		if text, err := Describe(md); err == nil {
			h.printf("\nResolved method descriptor:\n%s\n", text)
		}
	}
}

// OnSendHeaders implements InvocationEventHandler.
func (h *PrintingHandler) OnSendHeaders(md metadata.MD) {
	if h.Verbosity > 0 {
		h.printf("\nRequest metadata to send:\n%s\n", FormatMetadata(md))
	}
}

// OnReceiveHeaders implements InvocationEventHandler.
func (h *PrintingHandler) OnReceiveHeaders(md metadata.MD) {
	if h.Verbosity > 0 {
		h.printf("\nResponse headers received:\n%s\n", FormatMetadata(md))
	}
}

// OnReceiveResponse implements InvocationEventHandler.
func (h *PrintingHandler) OnReceiveResponse(msg proto.Message) {
	h.NumResponses++
	if h.Verbosity > 1 {
		h.printf("\nEstimated response size: %d bytes\n", proto.Size(msg))
	}
	if h.Verbosity > 0 {
		h.printf("\nResponse contents:\n")
	}
	text, err := h.Formatter(msg)
	if err != nil {
		if h.Err == nil {
			h.Err = fmt.Errorf("dynamic: format response %d: %w", h.NumResponses, err)
		}
		return
	}
	if h.Text && h.NumResponses > 1 {
		h.printf("%c", TextSeparator)
	}
	h.printf("%s\n", text)
}

// OnReceiveTrailers implements InvocationEventHandler.
func (h *PrintingHandler) OnReceiveTrailers(st *status.Status, md metadata.MD) {
	h.Status = st
	if h.Verbosity > 0 {
		h.printf("\nResponse trailers received:\n%s\n", FormatMetadata(md))
	}
	if h.Verbosity > 1 {
		h.printf("Received %s.\n", words.Count(h.NumResponses, "response"))
	}
}

func (h *PrintingHandler) printf(format string, args ...any) {
	if _, err := fmt.Fprintf(h.Out, format, args...); err != nil && h.Err == nil {
		h.Err = err
	}
}

// FormatMetadata renders metadata one "name: value" per line, sorted by
// name; binary values (-bin names) are shown base64-encoded as on the wire.
// Empty metadata renders as "(empty)".
func FormatMetadata(md metadata.MD) string {
	if len(md) == 0 {
		return "(empty)"
	}
	names := make([]string, 0, len(md))
	for k := range md {
		names = append(names, k)
	}
	sort.Strings(names)
	var lines []string
	for _, k := range names {
		for _, v := range md[k] {
			if strings.HasSuffix(k, "-bin") {
				v = base64.StdEncoding.EncodeToString([]byte(v))
			}
			lines = append(lines, k+": "+v)
		}
	}
	return strings.Join(lines, "\n")
}
