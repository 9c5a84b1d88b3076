package dynamic

import (
	"context"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
)

// UnreachedCalls is a grpc.StatsHandler for a server of dynamic services:
// it reports each call that ended before a Responder was given it (or
// before another handler called MarkReached). gRPC refused the request
// (over the size limit), the codec could not decode it (a string that is
// not UTF-8), an interceptor turned it away: the caller got a status all
// the same, and whoever journals calls should see it. Calls to the
// reflection and health services are left out.
type UnreachedCalls struct {
	// Report is called, in the call's goroutine, with each unreached call.
	Report func(ctx context.Context, call UnreachedCall)
}

// UnreachedCall is a call that ended before a handler had it.
type UnreachedCall struct {
	// Method is "pkg.Service/Method".
	Method string
	// Metadata is the request metadata; empty when none arrived.
	Metadata metadata.MD
	// Status is the status the caller got.
	Status   *status.Status
	Start    time.Time
	Duration time.Duration
}

// callState is what UnreachedCalls knows of one call.
type callState struct {
	reached atomic.Bool
	method  string
	start   time.Time
	md      metadata.MD
}

type callStateKey struct{}

// MarkReached records that a handler has the call of ctx (a handler that
// reports its calls itself, as the dynamic Responders' calls are).
func MarkReached(ctx context.Context) {
	if st, ok := ctx.Value(callStateKey{}).(*callState); ok {
		st.reached.Store(true)
	}
}

// TagRPC implements stats.Handler.
func (u UnreachedCalls) TagRPC(ctx context.Context, info *stats.RPCTagInfo) context.Context {
	if strings.HasPrefix(info.FullMethodName, "/grpc.reflection.") || strings.HasPrefix(info.FullMethodName, "/grpc.health.") {
		return ctx
	}
	return context.WithValue(ctx, callStateKey{}, &callState{method: strings.TrimPrefix(info.FullMethodName, "/")})
}

// HandleRPC implements stats.Handler.
func (u UnreachedCalls) HandleRPC(ctx context.Context, rs stats.RPCStats) {
	st, ok := ctx.Value(callStateKey{}).(*callState)
	if !ok {
		return
	}
	switch rs := rs.(type) {
	case *stats.Begin:
		st.start = rs.BeginTime
	case *stats.InHeader:
		st.md = rs.Header
	case *stats.End:
		if st.reached.Load() || u.Report == nil {
			return
		}
		md := st.md
		if md == nil {
			md = metadata.MD{}
		}
		u.Report(ctx, UnreachedCall{
			Method: st.method, Metadata: md, Status: status.Convert(rs.Error),
			Start: st.start, Duration: rs.EndTime.Sub(st.start),
		})
	}
}

// TagConn implements stats.Handler.
func (UnreachedCalls) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }

// HandleConn implements stats.Handler.
func (UnreachedCalls) HandleConn(context.Context, stats.ConnStats) {}
