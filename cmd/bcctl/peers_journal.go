package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/bcctl/bcctl/internal/admin/adminpb"
	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/journal"
	"github.com/bcctl/bcctl/internal/words"
)

// PeersJournalOptions are the options of `bcctl peers journal`.
type PeersJournalOptions struct {
	*PeersOptions
	Query     *adminpb.StreamJournalRequest
	peer      optionalID
	Verbosity int
}

func newPeersJournalCmd(f *Factory) *cobra.Command {
	opts := &PeersJournalOptions{PeersOptions: newPeersOptions(f), Query: &adminpb.StreamJournalRequest{}}
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
			if opts.peer.set {
				id := opts.peer.id
				opts.Query.PeerId = &id
			}
			return peersJournalRun(cmd.Context(), opts)
		},
	}
	fs := cmd.Flags()
	fs.BoolVarP(&opts.Query.Follow, "follow", "f", false, "keep printing calls as they end")
	fs.BoolVar(&opts.Query.NoBacklog, "no-backlog", false, "skip the calls serve kept: only new ones (with --follow)")
	fs.StringVar(&opts.Query.Method, "method", "", "only calls of this `method` (pkg.Svc/Method, or a glob like 'gitaly.*/*')")
	fs.StringVar(&opts.Query.Dir, "dir", "", "only calls in this `direction`: forward or reverse")
	fs.Var(&opts.peer, "peer", "only calls from or into this peer `id` (0: plain clients)")
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
	if err := opts.validate(); err != nil {
		return err
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
		return peersAPIError("peers journal", err)
	}
	return nil
}

// validate checks the filters before serve is asked: a filter that cannot
// match is a usage error, named as the user wrote it.
func (o *PeersJournalOptions) validate() error {
	switch o.Query.Dir {
	case "", "forward", "reverse":
	default:
		msg := fmt.Sprintf("--dir %q: want forward or reverse", o.Query.Dir)
		if near := words.Closest(o.Query.Dir, []string{"forward", "reverse"}, 1); len(near) > 0 {
			msg += "; did you mean " + near[0] + "?"
		}
		return usageErrorf("%s", msg)
	}
	if o.Query.Code != "" {
		if _, err := calls.ParseCode(o.Query.Code); err != nil {
			return usageErrorf("--code: %v", err)
		}
	}
	return nil
}

// optionalID is a numeric flag that may be left unset (no "(default -1)"
// in the help, and 0 is a value like any other).
type optionalID struct {
	id  uint64
	set bool
}

func (v *optionalID) String() string {
	if !v.set {
		return ""
	}
	return strconv.FormatUint(v.id, 10)
}

func (v *optionalID) Set(s string) error {
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return fmt.Errorf("want a peer ID, a number from 0")
	}
	v.id, v.set = id, true
	return nil
}

func (v *optionalID) Type() string { return "id" }
