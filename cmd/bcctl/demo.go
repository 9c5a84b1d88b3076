package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/bcctl/bcctl/internal/demo"
)

// DemoOptions are the options of `bcctl demo` (it has no flags).
type DemoOptions struct {
	IO *IOStreams
}

func newDemoCmd(f *Factory, runF func(context.Context, *DemoOptions) error) *cobra.Command {
	opts := &DemoOptions{IO: f.IOStreams}
	return &cobra.Command{
		Use:   "demo",
		Short: "Play Gitaly's transaction vote end to end on loopback, with nothing to set up",
		Long: `Start a bcctl serve (the upstream, Gitaly's role) and two clients in this
process, over real sockets on 127.0.0.1, with an embedded schema and embedded
scripts, and print what happens: a multiplexed client (Praefect's role) calls
gitaly.OperationService/UserCreateBranch with Praefect's transaction metadata
(gitaly-reference-transaction), serve calls back into the client's backchannel
to vote (gitaly.RefTransaction/VoteTransaction, PREPARED then COMMITTED, with
the transaction's id and node and a SHA-1) and answers once both votes are
COMMIT; then a plain gRPC client makes the same call and is answered without a
vote. The journal serve wrote and its expectations end the transcript.

It exits 0 when everything went as described, 1 otherwise.`,
		Example: `  bcctl demo
  go run github.com/bcctl/bcctl/cmd/bcctl@latest demo`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return demo.Run(cmd.Context(), opts.IO.Out, demo.Options{})
		},
	}
}
