package forward

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/bcctl/bcctl/internal/dynamic"
)

// Invoker makes the pane's calls: forward calls to the upstream, or
// reverse calls into a chosen peer's backchannel. Invoke reports what
// happens to h as dynamic.Invoke does.
type Invoker interface {
	Invoke(ctx context.Context, md protoreflect.MethodDescriptor, headers metadata.MD,
		h dynamic.InvocationEventHandler, requests dynamic.RequestSupplier) error
}

// InvokerFunc adapts a function to an Invoker.
type InvokerFunc func(ctx context.Context, md protoreflect.MethodDescriptor, headers metadata.MD,
	h dynamic.InvocationEventHandler, requests dynamic.RequestSupplier) error

// Invoke calls f.
func (f InvokerFunc) Invoke(ctx context.Context, md protoreflect.MethodDescriptor, headers metadata.MD,
	h dynamic.InvocationEventHandler, requests dynamic.RequestSupplier) error {
	return f(ctx, md, headers, h, requests)
}

// ConnInvoker invokes methods over cc with dynamic.Invoke.
func ConnInvoker(cc grpc.ClientConnInterface) Invoker {
	return InvokerFunc(func(ctx context.Context, md protoreflect.MethodDescriptor, headers metadata.MD,
		h dynamic.InvocationEventHandler, requests dynamic.RequestSupplier) error {
		return dynamic.Invoke(ctx, cc, md, headers, h, requests)
	})
}
