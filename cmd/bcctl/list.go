package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/bcctl/bcctl/internal/dynamic"
)

// ListOptions are the options of `bcctl list`.
type ListOptions struct {
	SchemaCmdOptions
	// Long shows each method's request and response types.
	Long bool
}

func newListCmd(f *Factory, runF func(context.Context, *ListOptions) error) *cobra.Command {
	opts := &ListOptions{SchemaCmdOptions: SchemaCmdOptions{IO: f.IOStreams, Factory: f}}
	cmd := &cobra.Command{
		Use:   "list ADDR [SERVICE]",
		Short: "List the services of a server, or the methods of one service",
		Long: `List the services the server at ADDR offers, or the methods of SERVICE.

The schema comes from server reflection, over a multiplexed connection unless
--no-mux is given. With --proto or --protoset the files are listed instead, and
ADDR may be left out.`,
		Example: `  bcctl list --plaintext localhost:9000
  bcctl list --plaintext localhost:9000 gitaly.RefService --long
  bcctl list --protoset api.protoset
  bcctl list --plaintext --no-mux --unix /run/app.sock`,
		Args: rangeArgs(0, 2, "the server address (ADDR)", "the service (SERVICE)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Args = args
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return listRun(cmd.Context(), opts)
		},
	}
	fs := cmd.Flags()
	fs.SortFlags = false
	fs.BoolVarP(&opts.Long, "long", "l", false, "show each method's request and response types")
	fs.StringVar(&opts.ProtosetOut, "protoset-out", "", "write the schema of what is listed to `file` as a protoset")
	opts.Client.AddFlags(fs)
	return cmd
}

func listRun(ctx context.Context, opts *ListOptions) (err error) {
	ctx, cancel := opts.Client.withMaxTime(ctx)
	defer cancel()
	defer func() { err = opts.Client.maxTimePassed(ctx, err, "resolving the schema") }()
	s, err := opts.open(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	var lines []string
	var described []protoreflect.Descriptor
	if opts.symbol == "" {
		names, err := s.Forward().ListServices(ctx)
		if err != nil {
			return explainSchemaError(err)
		}
		for _, n := range names {
			lines = append(lines, string(n))
		}
		if opts.ProtosetOut != "" {
			services, err := dynamic.Services(ctx, s.Forward())
			if err != nil {
				return explainSchemaError(err)
			}
			for _, sd := range services {
				described = append(described, sd)
			}
		}
	} else {
		d, err := findSymbol(ctx, s.Forward(), opts.symbol)
		if err != nil {
			return err
		}
		sd, ok := d.(protoreflect.ServiceDescriptor)
		if !ok {
			return fmt.Errorf("%s is a %s, not a service (describe shows it: bcctl describe ... %s)", opts.symbol, dynamic.Kind(d), opts.symbol)
		}
		described = append(described, sd)
		for i := range sd.Methods().Len() {
			lines = append(lines, methodLine(sd.Methods().Get(i), opts.Long))
		}
	}
	if opts.ProtosetOut != "" {
		if err := writeProtoset(opts.ProtosetOut, described); err != nil {
			return err
		}
	}
	if len(lines) == 0 {
		fmt.Fprintln(opts.IO.ErrOut, "(no services)")
		return nil
	}
	_, err = fmt.Fprintln(opts.IO.Out, strings.Join(lines, "\n"))
	return err
}

// methodLine is a method as list prints it: "pkg.Svc/Method", and with
// --long its signature.
func methodLine(md protoreflect.MethodDescriptor, long bool) string {
	name := dynamic.MethodName(md)
	if !long {
		return name
	}
	in, out := string(md.Input().FullName()), string(md.Output().FullName())
	if md.IsStreamingClient() {
		in = "stream " + in
	}
	if md.IsStreamingServer() {
		out = "stream " + out
	}
	return fmt.Sprintf("%s(%s) returns (%s)", name, in, out)
}
