package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/bcctl/bcctl/internal/dynamic"
)

// DescribeOptions are the options of `bcctl describe`.
type DescribeOptions struct {
	SchemaCmdOptions
	// MsgTemplate shows a JSON template of a message (or of a method's
	// request).
	MsgTemplate bool
}

func newDescribeCmd(f *Factory, runF func(context.Context, *DescribeOptions) error) *cobra.Command {
	opts := &DescribeOptions{SchemaCmdOptions: SchemaCmdOptions{IO: f.IOStreams, Factory: f}}
	cmd := &cobra.Command{
		Use:   "describe ADDR [SYMBOL]",
		Short: "Show the definition of a service, method, message or enum",
		Long: `Show SYMBOL (a service, method, message, enum or field, fully qualified) as
.proto source with its comments, or every service when SYMBOL is left out.

The schema comes from server reflection, over a multiplexed connection unless
--no-mux is given. With --proto or --protoset the files are used instead, and
ADDR may be left out.`,
		Example: `  bcctl describe --plaintext localhost:9000 gitaly.RefService
  bcctl describe --plaintext localhost:9000 gitaly.RefTransaction/VoteTransaction
  bcctl describe --protoset api.protoset acme.User --msg-template`,
		Args: rangeArgs(0, 2, "the server address (ADDR)", "the symbol (SYMBOL)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Args = args
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return describeRun(cmd.Context(), opts)
		},
	}
	fs := cmd.Flags()
	fs.SortFlags = false
	fs.BoolVar(&opts.MsgTemplate, "msg-template", false, "also show a JSON template of the message (for a method: of its request)")
	fs.StringVar(&opts.ProtosetOut, "protoset-out", "", "write the schema of what is described to `file` as a protoset")
	opts.Client.AddFlags(fs)
	return cmd
}

func describeRun(ctx context.Context, opts *DescribeOptions) (err error) {
	ctx, cancel := opts.Client.withMaxTime(ctx)
	defer cancel()
	defer func() { err = opts.Client.maxTimePassed(ctx, err, "resolving the schema") }()
	s, err := opts.open(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	var descs []protoreflect.Descriptor
	if opts.symbol == "" {
		services, err := dynamic.Services(ctx, s.Forward())
		if err != nil {
			return explainSchemaError(err)
		}
		for _, sd := range services {
			descs = append(descs, sd)
		}
	} else {
		d, err := findSymbol(ctx, s.Forward(), opts.symbol)
		if err != nil {
			return err
		}
		descs = append(descs, d)
	}
	var b strings.Builder
	for i, d := range descs {
		if i > 0 {
			b.WriteString("\n")
		}
		text, err := dynamic.Describe(d)
		if err != nil {
			return fmt.Errorf("describe %s: %s", d.FullName(), trimPkg(err))
		}
		fmt.Fprintf(&b, "%s is %s:\n%s", name(d), article(dynamic.Kind(d)), text)
		if !strings.HasSuffix(text, "\n") {
			b.WriteString("\n")
		}
		if opts.MsgTemplate {
			md, ok := d.(protoreflect.MessageDescriptor)
			if m, isMethod := d.(protoreflect.MethodDescriptor); isMethod {
				md, ok = m.Input(), true
			}
			if ok {
				tmpl, err := dynamic.TemplateJSON(md, false)
				if err != nil {
					return fmt.Errorf("template of %s: %s", md.FullName(), trimPkg(err))
				}
				fmt.Fprintf(&b, "\nMessage template of %s:\n%s\n", md.FullName(), tmpl)
			}
		}
	}
	if opts.ProtosetOut != "" {
		if err := writeProtoset(opts.ProtosetOut, descs); err != nil {
			return err
		}
	}
	_, err = fmt.Fprint(opts.IO.Out, b.String())
	return err
}

// name is how describe names a descriptor: methods as pkg.Svc/Method.
func name(d protoreflect.Descriptor) string {
	if md, ok := d.(protoreflect.MethodDescriptor); ok {
		return dynamic.MethodName(md)
	}
	return string(d.FullName())
}

func article(kind string) string {
	if strings.IndexByte("aeiou", kind[0]) >= 0 {
		return "an " + kind
	}
	return "a " + kind
}
