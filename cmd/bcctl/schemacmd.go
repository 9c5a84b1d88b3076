package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/bcctl/bcctl/internal/client"
	"github.com/bcctl/bcctl/internal/dynamic"
)

// SchemaCmdOptions are what list and describe share: the client flags,
// the address (optional with --proto/--protoset) and the symbol.
type SchemaCmdOptions struct {
	IO      *IOStreams
	Factory *Factory
	Client  ClientFlags
	// Args are the positional arguments: [ADDR] [SYMBOL].
	Args []string
	// ProtosetOut writes the schema of what was listed or described.
	ProtosetOut string

	addr, symbol string
}

// splitArgs tells the address from the symbol. With reflection both are
// positional (ADDR [SYMBOL]); with files only, the address may be left
// out, and a lone argument is an address only when it looks like one.
func (o *SchemaCmdOptions) splitArgs() error {
	switch len(o.Args) {
	case 0:
		if o.Client.Schema.Reflection() {
			return usageErrorf("missing the server address (ADDR); it may be left out only with --proto or --protoset")
		}
	case 1:
		if o.Client.Schema.Reflection() || looksLikeAddress(o.Args[0], o.Client.Conn.Unix) {
			o.addr = o.Args[0]
		} else {
			o.symbol = o.Args[0]
		}
	case 2:
		o.addr, o.symbol = o.Args[0], o.Args[1]
	default:
		return usageErrorf("too many arguments: want [ADDR] [SYMBOL], got %q", o.Args)
	}
	o.symbol = strings.TrimPrefix(o.symbol, ".")
	return nil
}

// open plans and opens the session of a schema command: it hosts nothing.
func (o *SchemaCmdOptions) open(ctx context.Context) (*client.Session, error) {
	if err := o.splitArgs(); err != nil {
		return nil, err
	}
	plan, err := o.Client.plan(o.addr, o.Factory.Getenv)
	if err != nil {
		return nil, err
	}
	return client.Open(ctx, o.Client.sessionConfig(plan, o.Factory))
}

// findSymbol looks a symbol up, suggesting services when it is unknown.
func findSymbol(ctx context.Context, src dynamic.Source, name string) (protoreflect.Descriptor, error) {
	d, err := src.FindSymbol(ctx, name)
	if err == nil {
		return d, nil
	}
	if ctx.Err() != nil {
		return nil, err // the schema was not asked, so its services cannot be either
	}
	if services, lerr := src.ListServices(ctx); lerr == nil && len(services) > 0 {
		names := make([]string, len(services))
		for i, s := range services {
			names[i] = string(s)
		}
		return nil, fmt.Errorf("%s\n(the schema's services: %s)", trimPkg(err), strings.Join(names, ", "))
	}
	return nil, explainSchemaError(err)
}

// writeProtoset writes the files of descs (and their imports) to path.
func writeProtoset(path string, descs []protoreflect.Descriptor) error {
	seen := map[string]bool{}
	var files []protoreflect.FileDescriptor
	for _, d := range descs {
		f := d.ParentFile()
		if f == nil || seen[f.Path()] {
			continue
		}
		seen[f.Path()] = true
		files = append(files, f)
	}
	src, err := dynamic.NewSourceFromFiles(files...)
	if err != nil {
		return fmt.Errorf("--protoset-out: %s", trimPkg(err))
	}
	out, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("--protoset-out: %w", err)
	}
	if err := src.WriteProtoset(out); err != nil {
		out.Close()
		return fmt.Errorf("--protoset-out %s: %w", path, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("--protoset-out: %w", err)
	}
	return nil
}
