package forward

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/dynamic"
)

// Observed wraps inv so that every call it makes is reported to obs as a
// calls.Event of origin Made (direction dir, to peer), once the call
// is over: the journal and the script's expectations see the calls a
// person makes from the TUI like any other.
func Observed(inv Invoker, obs calls.Observer, dir calls.Direction, peer calls.Peer) Invoker {
	if obs == nil {
		return inv
	}
	return InvokerFunc(func(ctx context.Context, md protoreflect.MethodDescriptor, headers metadata.MD,
		h dynamic.InvocationEventHandler, requests dynamic.RequestSupplier) error {
		rec := &recordingHandler{next: h}
		ev := &calls.Event{
			Dir: dir, Origin: calls.Made, Peer: peer, Method: dynamic.MethodName(md),
			Metadata: headers, Start: time.Now(),
		}
		supply := func(msg proto.Message) error {
			err := requests(msg)
			if err == nil {
				ev.Requests = append(ev.Requests, proto.Clone(msg))
			}
			return err
		}
		err := inv.Invoke(ctx, md, headers, rec, supply)
		ev.Duration = time.Since(ev.Start)
		ev.Header, ev.Trailer, ev.Responses = rec.header, rec.trailer, rec.responses
		ev.Status = rec.status
		if ev.Status == nil {
			ev.Status = status.New(codes.OK, "")
			if err != nil {
				ev.Status = status.Convert(err)
				if ev.Status.Code() == codes.Unknown {
					ev.Status = status.New(codes.Unavailable, err.Error())
				}
			}
		}
		obs.ObserveCall(ev)
		return err
	})
}

// recordingHandler keeps what a call got and passes it on.
type recordingHandler struct {
	next      dynamic.InvocationEventHandler
	header    metadata.MD
	trailer   metadata.MD
	responses []proto.Message
	status    *status.Status
}

func (r *recordingHandler) OnResolveMethod(md protoreflect.MethodDescriptor) {
	r.next.OnResolveMethod(md)
}
func (r *recordingHandler) OnSendHeaders(md metadata.MD) { r.next.OnSendHeaders(md) }
func (r *recordingHandler) OnReceiveHeaders(md metadata.MD) {
	r.header = md
	r.next.OnReceiveHeaders(md)
}
func (r *recordingHandler) OnReceiveResponse(msg proto.Message) {
	r.responses = append(r.responses, msg)
	r.next.OnReceiveResponse(msg)
}
func (r *recordingHandler) OnReceiveTrailers(st *status.Status, md metadata.MD) {
	if st == nil {
		st = status.New(codes.OK, "")
	}
	r.status, r.trailer = st, md
	r.next.OnReceiveTrailers(st, md)
}
