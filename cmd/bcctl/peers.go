package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bcctl/bcctl/internal/admin"
	"github.com/bcctl/bcctl/internal/admin/adminpb"
	"github.com/bcctl/bcctl/internal/words"
)

// PeersOptions are the options shared by `bcctl peers` and its
// subcommands.
type PeersOptions struct {
	IO      *IOStreams
	Factory *Factory
	// Admin is the admin address of a running serve.
	Admin string
	// Output is "auto" (table or text on a terminal, JSON lines
	// otherwise), "table"/"text", or "json".
	Output string
	// Timeout bounds each admin call that is not a stream.
	Timeout time.Duration
}

// addOutputFlag adds -o/--output with the given human mode's name.
func (o *PeersOptions) addOutputFlag(cmd *cobra.Command, human string) {
	cmd.Flags().StringVarP(&o.Output, "output", "o", "auto", fmt.Sprintf("`mode`: auto (%s on a terminal, JSON lines otherwise), %s, or json", human, human))
}

// jsonOut reports whether output is JSON lines.
func (o *PeersOptions) jsonOut(human string) (bool, error) {
	switch o.Output {
	case "auto":
		return !o.IO.IsStdoutTTY(), nil
	case "json":
		return true, nil
	case human:
		return false, nil
	}
	return false, usageErrorf("--output %q: want auto, %s or json", o.Output, human)
}

// client connects to the admin API.
func (o *PeersOptions) client() (*admin.Client, error) {
	a, err := ParseAddress(o.Admin, false)
	if err != nil {
		return nil, usageErrorf("admin address: %v", err)
	}
	return admin.NewClient(a.String())
}

// withTimeout bounds one admin call.
func (o *PeersOptions) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if o.Timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, o.Timeout)
}

func newPeersOptions(f *Factory) *PeersOptions {
	return &PeersOptions{IO: f.IOStreams, Factory: f, Timeout: 10 * time.Second}
}

func newPeersCmd(f *Factory) *cobra.Command {
	opts := newPeersOptions(f)
	cmd := &cobra.Command{
		Use:   "peers ADMIN [flags]",
		Short: "List the live peers of a running bcctl serve, and call into them",
		Long: `List the multiplexed peers connected to a running bcctl serve, through its admin
API (bcctl serve --admin ADMIN): ID, address, connected since, calls each way,
last call, and the services each peer's backchannel offers. On a terminal the
list is a table, whose first line also counts the plain gRPC clients connected
(they have no backchannel, so they are not peers); otherwise one JSON object
per peer and line.

The subcommands make a reverse call into a peer (call), follow joins and
leaves (watch), stream the journal (journal), and check the script's
expectations now (verify).`,
		Example: `  bcctl peers unix:/tmp/bcctl-admin.sock
  bcctl peers 127.0.0.1:9001 -o json | jq .id
  bcctl peers call 127.0.0.1:9001 3 gitaly.RefTransaction/VoteTransaction -d '{"transaction_id": 7}'
  bcctl peers journal 127.0.0.1:9001 --follow --dir reverse
  bcctl peers verify 127.0.0.1:9001`,
		Args: exactArgs("the admin address of bcctl serve (ADMIN)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Admin = args[0]
			return peersListRun(cmd.Context(), opts)
		},
	}
	opts.addOutputFlag(cmd, "table")
	cmd.AddCommand(newPeersCallCmd(f), newPeersWatchCmd(f), newPeersJournalCmd(f), newPeersVerifyCmd(f))
	return cmd
}

// peerJSON is a peer as `bcctl peers` prints it in JSON lines.
type peerJSON struct {
	ID             uint64        `json:"id"`
	RemoteAddr     string        `json:"remote_addr,omitempty"`
	ConnectedAt    *time.Time    `json:"connected_at,omitempty"`
	ForwardCalls   uint64        `json:"forward_calls"`
	ReverseCalls   uint64        `json:"reverse_calls"`
	LastCall       *lastCallJSON `json:"last_call,omitempty"`
	Services       []string      `json:"services,omitempty"`
	Discovery      string        `json:"discovery,omitempty"`
	DiscoveryError string        `json:"discovery_error,omitempty"`
	OnConnectError string        `json:"on_connect_error,omitempty"`
}

// lastCallJSON is a peer's last call in peerJSON.
type lastCallJSON struct {
	At     *time.Time `json:"at,omitempty"`
	Dir    string     `json:"dir,omitempty"`
	Method string     `json:"method,omitempty"`
	Code   string     `json:"code,omitempty"`
}

func peerJSONOf(p *adminpb.Peer) peerJSON {
	out := peerJSON{
		ID: p.GetId(), RemoteAddr: p.GetRemoteAddr(), ConnectedAt: timeOf(p.GetConnectedAt()),
		ForwardCalls: p.GetForwardCalls(), ReverseCalls: p.GetReverseCalls(),
		Services: p.GetServices(), Discovery: p.GetDiscovery(), DiscoveryError: p.GetDiscoveryError(),
		OnConnectError: p.GetOnConnectError(),
	}
	if l := p.GetLastCall(); l != nil {
		out.LastCall = &lastCallJSON{At: timeOf(l.GetAt()), Dir: l.GetDir(), Method: l.GetMethod(), Code: l.GetCode()}
	}
	return out
}

// timeOf is ts as a time, nil when ts is.
func timeOf(ts *timestamppb.Timestamp) *time.Time {
	if ts == nil {
		return nil
	}
	t := ts.AsTime()
	return &t
}

func peersListRun(ctx context.Context, opts *PeersOptions) error {
	jsonOut, err := opts.jsonOut("table")
	if err != nil {
		return err
	}
	c, err := opts.client()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := opts.withTimeout(ctx)
	defer cancel()
	peers, err := c.Peers(ctx)
	if err != nil {
		return err
	}
	if jsonOut {
		enc := json.NewEncoder(opts.IO.Out)
		for _, p := range peers {
			if err := enc.Encode(peerJSONOf(p)); err != nil {
				return err
			}
		}
		return nil
	}
	info, err := c.Server(ctx)
	if err != nil {
		return err
	}
	cs := opts.IO.ColorScheme()
	script := info.Script
	if info.ScriptReloads > 0 {
		script += fmt.Sprintf(" (reloaded %s)", words.Count(info.ScriptReloads, "time"))
	}
	where := strings.Join(info.Listen, ", ")
	if info.Kind == "proxy" {
		where += " → " + info.Upstream
		if script == "" {
			script = "none"
		}
	}
	kind := info.Kind
	if kind == "" {
		kind = "serve"
	}
	connected := words.Count(len(peers), "peer")
	if info.PlainClients > 0 {
		connected += ", " + words.Count(info.PlainClients, "plain client")
	}
	fmt.Fprintf(opts.IO.Out, "%s %s · script %s · %s · %d forward, %d reverse calls\n",
		cs.Bold("bcctl "+kind), where, script, connected, info.ForwardCalls, info.ReverseCalls)
	if info.ScriptError != "" {
		fmt.Fprintf(opts.IO.Out, "%s\n%s\n", cs.Red("the last change of the script did not load; the previous script stays in force:"), info.ScriptError)
	}
	switch {
	case len(peers) == 0 && info.PlainClients == 1:
		fmt.Fprintln(opts.IO.Out, cs.Dim("no multiplexed peer is connected (1 plain client is: it has no backchannel)"))
		return nil
	case len(peers) == 0 && info.PlainClients > 1:
		fmt.Fprintln(opts.IO.Out, cs.Dim(fmt.Sprintf("no multiplexed peer is connected (%d plain clients are: they have no backchannel)", info.PlainClients)))
		return nil
	case len(peers) == 0:
		fmt.Fprintln(opts.IO.Out, cs.Dim("no peer is connected"))
		return nil
	}
	return peersTable(opts.IO.Out, peers, time.Now(), cs)
}

// peersTable prints peers as an aligned table.
func peersTable(w io.Writer, peers []*adminpb.Peer, now time.Time, cs ColorScheme) error {
	// Align first, make the header bold after: the bold's escape codes
	// must not count toward the first column's width.
	var table bytes.Buffer
	tw := tabwriter.NewWriter(&table, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tADDRESS\tCONNECTED\tFWD\tREV\tLAST CALL\tSERVICES")
	for _, p := range peers {
		connected := "-"
		if p.ConnectedAt != nil {
			connected = peersAgo(now, p.ConnectedAt.AsTime())
		}
		last := "-"
		if l := p.LastCall; l != nil {
			last = fmt.Sprintf("%s %s %s", l.Dir, l.Method, l.Code)
			if l.At != nil {
				last += " " + peersAgo(now, l.At.AsTime())
			}
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%s\t%s\n", p.Id, p.RemoteAddr, connected, p.ForwardCalls, p.ReverseCalls, last, peersServices(p))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	header, rows, _ := strings.Cut(table.String(), "\n")
	_, err := fmt.Fprintf(w, "%s\n%s", cs.Bold(header), rows)
	return err
}

// peersServices says what a peer offers, or why it is not known.
func peersServices(p *adminpb.Peer) string {
	switch p.Discovery {
	case "done":
		if len(p.Services) == 0 {
			return "(none)"
		}
		return strings.Join(p.Services, ",")
	case "not-served":
		return "(no reflection)"
	case "failed":
		return "(failed: " + p.DiscoveryError + ")"
	case "pending":
		return "(listing...)"
	}
	return "-"
}

// peersAgo says how long ago t was, for people: "3s ago", "2m10s ago".
func peersAgo(now, t time.Time) string {
	d := now.Sub(t)
	switch {
	case d < time.Second:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds ago", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm ago", int(d.Hours()), int(d.Minutes())%60)
}

// readData reads -d: inline text, @FILE, or @- for stdin.
func peersReadData(data string, stdin io.Reader) (string, error) {
	r, done, err := openData(data, stdin)
	if err != nil {
		return "", err
	}
	defer done()
	b, err := io.ReadAll(r)
	if err != nil {
		return "", fmt.Errorf("-d %s: %w", data, err)
	}
	return string(b), nil
}
