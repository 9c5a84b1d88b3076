package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/status"

	"github.com/bcctl/bcctl/internal/admin/adminpb"
	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/script"
)

// PeersCallOptions are the options of `bcctl peers call`.
type PeersCallOptions struct {
	*PeersOptions
	Peer    uint64
	Method  string
	Data    string
	Headers []string
	// CallTimeout bounds the reverse call itself.
	CallTimeout time.Duration
	Verbosity   int
}

func newPeersCallCmd(f *Factory) *cobra.Command {
	opts := &PeersCallOptions{PeersOptions: newPeersOptions(f)}
	cmd := &cobra.Command{
		Use:   "call ADMIN PEER METHOD [-d JSON] [flags]",
		Short: "Make a reverse call into a peer's backchannel",
		Long: `Call METHOD on the backchannel of peer PEER (its ID, as bcctl peers lists it)
of the bcctl serve whose admin API is at ADMIN. The method is looked up in
serve's schema of the peers' services, then by the peer's own reflection.
The call is written to serve's journal (by "admin") and counts for the
script's expectations.

The responses are printed as JSON; a non-OK status is printed on stderr and
exits 64+code, as bcctl call does. A peer that is not connected, an unknown
method or a request that does not fit the method exit 1 without calling.`,
		Example: `  bcctl peers call 127.0.0.1:9001 1 gitaly.RefTransaction/VoteTransaction -d '{"transaction_id": 7}'
  bcctl peers call unix:/tmp/admin.sock 2 gitaly.RefTransaction/StopTransaction -H 'x-reason: test'
  echo '{"transaction_id": 8}' | bcctl peers call 127.0.0.1:9001 1 gitaly.RefTransaction/VoteTransaction -d @-`,
		Args: peersCallArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Admin, opts.Method = args[0], args[2]
			id, err := strconv.ParseUint(args[1], 10, 64)
			if err != nil || id == 0 {
				return usageErrorf("peer %q: want a peer's ID, a number from 1 (bcctl peers lists them)", args[1])
			}
			opts.Peer = id
			return peersCallRun(cmd.Context(), opts)
		},
	}
	fs := cmd.Flags()
	fs.StringVarP(&opts.Data, "data", "d", "", "request `data` as JSON, @FILE, or @- for stdin (default: an empty message)")
	fs.StringArrayVarP(&opts.Headers, "header", "H", nil, "request metadata 'name: value' (repeatable)")
	fs.Var(secondsValue{&opts.CallTimeout}, "timeout", "deadline of the reverse call (`seconds` or a duration; default 10s)")
	fs.StringVarP(&opts.Output, "output", "o", "text", "`mode`: text (each response as JSON, the status on stderr) or json (one JSON document with the status, responses and metadata)")
	fs.CountVarP(&opts.Verbosity, "verbose", "v", "also print the response header and trailer, the duration and the journal entry")
	return cmd
}

func peersCallRun(ctx context.Context, opts *PeersCallOptions) error {
	jsonOut, err := opts.jsonOut("text")
	if err != nil {
		return err
	}
	md, err := dynamic.ParseHeaders(opts.Headers)
	if err != nil {
		return usageErrorf("%s", trimPkg(err))
	}
	data, err := peersReadData(opts.Data, opts.IO.In)
	if err != nil {
		return err
	}
	req := &adminpb.CallPeerRequest{PeerId: opts.Peer, Method: opts.Method, RequestJson: data, TimeoutMs: uint32(opts.CallTimeout / time.Millisecond)}
	for _, k := range sortedKeys(md) {
		for _, v := range md[k] {
			req.Metadata = append(req.Metadata, &adminpb.Metadata{Key: k, Value: v})
		}
	}
	c, err := opts.client()
	if err != nil {
		return err
	}
	defer c.Close()
	timeout := opts.CallTimeout
	if timeout <= 0 {
		timeout = script.DefaultCallTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout+opts.Timeout)
	defer cancel()
	resp, err := c.CallPeer(ctx, req)
	if err != nil {
		return peersAPIError("peers call", err)
	}
	code, err := calls.ParseCode(resp.Code)
	if err != nil {
		return fmt.Errorf("peers call: serve answered status %q: %w", resp.Code, err)
	}
	if jsonOut {
		doc := peersCallJSON{
			Peer: opts.Peer, Method: resp.Method, Code: resp.Code, Message: resp.Message,
			Header: metadataJSONOf(resp.Header), Trailer: metadataJSONOf(resp.Trailer), DurationMS: resp.DurationMs, JournalID: resp.JournalId,
		}
		for _, r := range resp.ResponsesJson {
			doc.Responses = append(doc.Responses, json.RawMessage(r))
		}
		for _, d := range resp.DetailsJson {
			doc.Details = append(doc.Details, json.RawMessage(d))
		}
		line, err := json.Marshal(doc)
		if err != nil {
			return err
		}
		fmt.Fprintf(opts.IO.Out, "%s\n", line)
	} else {
		if opts.Verbosity > 0 {
			fmt.Fprintf(opts.IO.ErrOut, "Calling %s on peer %d (journal entry #%d, %s)\n", resp.Method, opts.Peer, resp.JournalId, serveMS(resp.DurationMs))
			peersPrintMetadata(opts.IO.ErrOut, "Response headers", resp.Header)
		}
		for _, r := range resp.ResponsesJson {
			fmt.Fprintln(opts.IO.Out, peersIndent(r))
		}
		if opts.Verbosity > 0 {
			peersPrintMetadata(opts.IO.ErrOut, "Response trailers", resp.Trailer)
		}
		if resp.Code != "OK" {
			var b strings.Builder
			// The status reads as bcctl call's (and grpcurl's) does.
			fmt.Fprintf(&b, "ERROR:\n  Code: %s\n  Message: %s\n", code, resp.Message)
			if len(resp.DetailsJson) > 0 {
				b.WriteString("  Details:\n")
				for i, d := range resp.DetailsJson {
					fmt.Fprintf(&b, "  %d)\t%s\n", i+1, d)
				}
			}
			_, _ = opts.IO.ErrOut.Write([]byte(b.String()))
		}
	}
	if code != 0 {
		return &StatusError{Code: code}
	}
	return nil
}

// peersCallJSON is `bcctl peers call -o json`'s document.
type peersCallJSON struct {
	Peer       uint64            `json:"peer"`
	Method     string            `json:"method"`
	Code       string            `json:"code"`
	Message    string            `json:"message,omitempty"`
	Details    []json.RawMessage `json:"details,omitempty"`
	Responses  []json.RawMessage `json:"responses,omitempty"`
	Header     []metadataJSON    `json:"header,omitempty"`
	Trailer    []metadataJSON    `json:"trailer,omitempty"`
	DurationMS float64           `json:"duration_ms"`
	JournalID  uint64            `json:"journal_id"`
}

// metadataJSON is one metadata entry in peersCallJSON.
type metadataJSON struct {
	Key   string `json:"key,omitempty"`
	Value string `json:"value,omitempty"`
}

func metadataJSONOf(md []*adminpb.Metadata) []metadataJSON {
	var out []metadataJSON
	for _, m := range md {
		out = append(out, metadataJSON{Key: m.GetKey(), Value: m.GetValue()})
	}
	return out
}

// peersAPIError explains why the admin API did not do what command asked.
func peersAPIError(command string, err error) error {
	if st, ok := status.FromError(err); ok {
		return fmt.Errorf("%s: %s: %s", command, calls.CodeName(st.Code()), st.Message())
	}
	return err
}

func peersIndent(js string) string {
	var b bytes.Buffer
	if err := json.Indent(&b, []byte(js), "", "  "); err != nil {
		return js
	}
	return b.String()
}

func peersPrintMetadata(w interface{ Write([]byte) (int, error) }, title string, md []*adminpb.Metadata) {
	var b strings.Builder
	fmt.Fprintf(&b, "\n%s:\n", title)
	if len(md) == 0 {
		b.WriteString("(empty)\n")
	}
	for _, m := range md {
		fmt.Fprintf(&b, "%s: %s\n", m.Key, m.Value)
	}
	_, _ = w.Write([]byte(b.String()))
}

// peersCallArgs wants ADMIN PEER METHOD. With two, it names the one left
// out: a method in the second place means the peer's ID is missing.
func peersCallArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 2 && strings.ContainsAny(args[1], "./") {
		return usageErrorf("%s: missing the peer's ID (PEER) before the method %s (bcctl peers lists the peers)", commandName(cmd), args[1])
	}
	return exactArgs("the admin address (ADMIN)", "the peer's ID (PEER)", "the method (METHOD)")(cmd, args)
}
