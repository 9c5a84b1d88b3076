package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/bcctl/bcctl/internal/script"
)

func newPeersVerifyCmd(f *Factory) *cobra.Command {
	opts := newPeersOptions(f)
	cmd := &cobra.Command{
		Use:   "verify ADMIN",
		Short: "Check a running bcctl serve's expectations now",
		Long: `Check the expect entries of the script in force in the bcctl serve whose admin
API is at ADMIN against every call so far, print the report, and exit 0 when
every expectation is met, 3 when one is not (docs/exit-codes.md). serve keeps
running either way.`,
		Example: `  bcctl peers verify unix:/tmp/bcctl-admin.sock && echo "all expectations met"`,
		Args:    exactArgs("the admin address of bcctl serve (ADMIN)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Admin = args[0]
			return peersVerifyRun(cmd.Context(), opts)
		},
	}
	return cmd
}

// peersExpectationsError is a failed report from serve; it exits with
// ExitExpectations and prints the report.
type peersExpectationsError struct{ report string }

func (e *peersExpectationsError) Error() string { return e.report }
func (e *peersExpectationsError) Unwrap() error { return script.ErrExpectationsFailed }

func peersVerifyRun(ctx context.Context, opts *PeersOptions) error {
	c, err := opts.client()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := opts.withTimeout(ctx)
	defer cancel()
	exp, err := c.CheckExpectations(ctx)
	if err != nil {
		return err
	}
	if len(exp.Results) == 0 {
		fmt.Fprintln(opts.IO.Out, "expectations: the script has none")
		return nil
	}
	if !exp.Ok {
		return &peersExpectationsError{report: exp.Report}
	}
	fmt.Fprintln(opts.IO.Out, exp.Report)
	return nil
}
