package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/bcctl/bcctl/internal/admin/adminpb"
	"github.com/bcctl/bcctl/internal/journal"
)

// PeersJournalOptions are the options of `bcctl peers journal`.
type PeersJournalOptions struct {
	*PeersOptions
	Query     *adminpb.StreamJournalRequest
	peer      int64
	Verbosity int
}

func newPeersJournalCmd(f *Factory) *cobra.Command {
	opts := &PeersJournalOptions{PeersOptions: newPeersOptions(f), Query: &adminpb.StreamJournalRequest{}, peer: -1}
	cmd := &cobra.Command{
		Use:   "journal ADMIN [flags]",
		Short: "Stream the journal of a running bcctl serve",
		Long: `Print the journal entries of the bcctl serve whose admin API is at ADMIN: the
recent calls serve keeps in memory, then, with --follow, every call as it
ends until interrupted or serve stops. Filters select by method (a name or a
glob), direction, peer and status code. On a terminal the entries are lines
of text; otherwise JSON lines in the --journal format (docs/cli.md).`,
		Example: `  bcctl peers journal 127.0.0.1:9001
  bcctl peers journal unix:/tmp/admin.sock --follow --dir reverse --code UNAVAILABLE
  bcctl peers journal 127.0.0.1:9001 --method 'gitaly.*/*' --peer 3 -o json`,
		Args: exactArgs("the admin address of bcctl serve (ADMIN)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Admin = args[0]
			if opts.peer >= 0 {
				id := uint64(opts.peer)
				opts.Query.PeerId = &id
			}
			return peersJournalRun(cmd.Context(), opts)
		},
	}
	fs := cmd.Flags()
	fs.BoolVarP(&opts.Query.Follow, "follow", "f", false, "keep printing calls as they end")
	fs.BoolVar(&opts.Query.NoBacklog, "no-backlog", false, "skip the calls serve kept: only new ones (with --follow)")
	fs.StringVar(&opts.Query.Method, "method", "", "only calls of this `method` (pkg.Svc/Method, or a glob like 'gitaly.*/*')")
	fs.StringVar(&opts.Query.Dir, "dir", "", "only `forward` or `reverse` calls")
	fs.Int64Var(&opts.peer, "peer", -1, "only calls from or into this peer `id` (0: plain clients)")
	fs.StringVar(&opts.Query.Code, "code", "", "only calls that ended with this status `code` (OK, UNAVAILABLE, ...)")
	fs.Uint64Var(&opts.Query.AfterId, "after", 0, "only entries with an ID greater than `id`")
	opts.addOutputFlag(cmd, "text")
	fs.CountVarP(&opts.Verbosity, "verbose", "v", "in text, also print messages (-vv: and metadata)")
	return cmd
}

func peersJournalRun(ctx context.Context, opts *PeersJournalOptions) error {
	jsonOut, err := opts.jsonOut("text")
	if err != nil {
		return err
	}
	if opts.Query.NoBacklog && !opts.Query.Follow {
		return usageErrorf("--no-backlog without --follow prints nothing: add --follow")
	}
	c, err := opts.client()
	if err != nil {
		return err
	}
	defer c.Close()
	pr := &servePrinter{w: opts.IO.Out, verbosity: opts.Verbosity, cs: opts.IO.ColorScheme()}
	err = c.Journal(ctx, opts.Query, func(l *adminpb.StreamJournalResponse) error {
		if jsonOut {
			_, err := io.WriteString(opts.IO.Out, l.Line+"\n")
			return err
		}
		var e journal.Entry
		if err := json.Unmarshal([]byte(l.Line), &e); err != nil {
			return fmt.Errorf("journal entry %d: %w", l.Id, err)
		}
		_, err := io.WriteString(opts.IO.Out, pr.text(e))
		return err
	})
	if err != nil && ctx.Err() != nil && opts.Query.Follow {
		return nil // interrupted while following
	}
	if err != nil {
		return peersCallError(err)
	}
	return nil
}
