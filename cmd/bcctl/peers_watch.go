package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/bcctl/bcctl/internal/admin/adminpb"
)

func newPeersWatchCmd(f *Factory) *cobra.Command {
	opts := newPeersOptions(f)
	cmd := &cobra.Command{
		Use:   "watch ADMIN [flags]",
		Short: "Follow peers as they join and leave a running bcctl serve",
		Long: `Print the peers connected to the bcctl serve whose admin API is at ADMIN,
then every change as it happens: a peer joins, leaves, or its backchannel
services are discovered. It runs until interrupted or serve stops. On a
terminal the changes are lines of text; otherwise JSON lines:
{"kind": "snapshot"|"joined"|"left"|"updated", "peer": {...}, "at": ...}.`,
		Example: `  bcctl peers watch unix:/tmp/bcctl-admin.sock
  bcctl peers watch 127.0.0.1:9001 -o json | jq -c 'select(.kind == "left")'`,
		Args: exactArgs("the admin address of bcctl serve (ADMIN)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Admin = args[0]
			return peersWatchRun(cmd.Context(), opts)
		},
	}
	opts.addOutputFlag(cmd, "text")
	return cmd
}

// peersChangeJSON is one line of `bcctl peers watch -o json`.
type peersChangeJSON struct {
	Kind string     `json:"kind"`
	Peer peerJSON   `json:"peer"`
	At   *time.Time `json:"at,omitempty"`
}

func peersWatchRun(ctx context.Context, opts *PeersOptions) error {
	jsonOut, err := opts.jsonOut("text")
	if err != nil {
		return err
	}
	c, err := opts.client()
	if err != nil {
		return err
	}
	defer c.Close()
	out := opts.IO.Out
	cs := opts.IO.ColorScheme()
	emit := func(kind string, p *adminpb.Peer, at *time.Time) error {
		if jsonOut {
			line, err := json.Marshal(peersChangeJSON{Kind: kind, Peer: peerJSONOf(p), At: at})
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(out, "%s\n", line)
			return err
		}
		when := ""
		if at != nil {
			when = cs.Dim(at.Local().Format("15:04:05.000")) + " "
		}
		var what string
		switch kind {
		case "snapshot":
			what = fmt.Sprintf("peer %d connected from %s (%d forward, %d reverse calls)", p.Id, p.RemoteAddr, p.ForwardCalls, p.ReverseCalls)
		case "joined":
			what = fmt.Sprintf("peer %d joined from %s", p.Id, p.RemoteAddr)
		case "left":
			what = fmt.Sprintf("peer %d left (%d forward, %d reverse calls)", p.Id, p.ForwardCalls, p.ReverseCalls)
		default:
			what = fmt.Sprintf("peer %d: services %s", p.Id, peersServices(p))
			if p.OnConnectError != "" {
				what = fmt.Sprintf("peer %d: on_connect failed: %s", p.Id, p.OnConnectError)
			}
		}
		_, err := fmt.Fprintf(out, "%s%s\n", when, what)
		return err
	}
	err = c.WatchPeers(ctx, func(peers []*adminpb.Peer) error {
		if !jsonOut && len(peers) == 0 {
			fmt.Fprintln(out, cs.Dim("no peer is connected; waiting for changes"))
		}
		for _, p := range peers {
			if err := emit("snapshot", p, nil); err != nil {
				return err
			}
		}
		return nil
	}, func(ch *adminpb.PeerChange) error {
		if ch.Peer == nil {
			return nil
		}
		return emit(ch.Kind, ch.Peer, timeOf(ch.At))
	})
	if err != nil && ctx.Err() != nil {
		return nil // interrupted: the watch is over
	}
	return err
}
