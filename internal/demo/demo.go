package demo

import (
	"context"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/corpus"
	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/host"
	"github.com/bcctl/bcctl/internal/journal"
	"github.com/bcctl/bcctl/internal/script"
	"github.com/bcctl/bcctl/internal/serve"
)

//go:embed serve.yaml
var serveScript []byte

//go:embed client.yaml
var clientScript []byte

// ErrFailed is wrapped by Run's error when the flow did not go as the demo
// expects (a call failed, an expectation was not met).
var ErrFailed = errors.New("the demo did not go as expected")

// Options configure Run.
type Options struct {
	// Timeout bounds the whole demo (default 20s).
	Timeout time.Duration
}

// Run plays the demo and writes its transcript to w.
func Run(ctx context.Context, w io.Writer, opts Options) error {
	if opts.Timeout <= 0 {
		opts.Timeout = 20 * time.Second
	}
	d := &demo{w: w, votes: make(chan *calls.Event, 16)}
	if err := d.load(ctx); err != nil {
		return err
	}
	// The upstream: bcctl serve on a loopback port, run as bcctl serve
	// runs it, with the flow in the foreground.
	srv, err := serve.New(serve.Config{Schema: d.src, Script: d.upScript})
	if err != nil {
		return err
	}
	d.srv = srv
	stopped, err := serve.Run(ctx, serve.RunConfig{
		Service: srv,
		Listen: []serve.ListenFunc{func() (net.Listener, error) {
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return nil, fmt.Errorf("demo: listen on 127.0.0.1: %w", err)
			}
			return lis, nil
		}},
		Grace: 5 * time.Second,
		Foreground: func(ctx context.Context, l serve.Listening) error {
			ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
			defer cancel()
			return d.play(ctx, l.Listen[0])
		},
	})
	switch {
	case err != nil:
		return err
	case stopped.Reason == serve.StopCanceled:
		return fmt.Errorf("demo: %w", context.Cause(ctx))
	case stopped.Err != nil: // the flow failed, or the listener did
		return stopped.Err
	case stopped.ShutdownErr != nil:
		return stopped.ShutdownErr
	}
	return d.finish()
}

type demo struct {
	w          io.Writer
	src        *dynamic.FileSource
	upScript   *script.Script // serve's
	downScript *script.Script // the multiplexed client's
	srv        *serve.Server
	shown      uint64 // the highest journal ID printed

	votes    chan *calls.Event // reverse calls the client answered, in order
	hashNote bool              // the reference_updates_hash has been explained
}

func (d *demo) printf(format string, args ...any) { fmt.Fprintf(d.w, format, args...) }

// load reads the embedded schema and scripts.
func (d *demo) load(ctx context.Context) error {
	src, err := dynamic.NewSourceFromProtosetBytes(corpus.Protoset)
	if err != nil {
		return err
	}
	d.src = src
	scfg := script.Config{Upstream: src}
	if d.upScript, err = script.Parse(ctx, "serve.yaml", serveScript, scfg); err != nil {
		return fmt.Errorf("demo: the embedded serve.yaml: %w", err)
	}
	if d.downScript, err = script.Parse(ctx, "client.yaml", clientScript, scfg); err != nil {
		return fmt.Errorf("demo: the embedded client.yaml: %w", err)
	}
	return nil
}

// play is the flow, while serve listens on addr: the clients connect
// and call, and are closed before serve stops.
func (d *demo) play(ctx context.Context, addr string) error {
	src := d.src
	d.printf("bcctl demo: Gitaly's transaction vote over a backchannel, on real loopback sockets\n\n")
	d.printf("serve    listening on %s: multiplexed peers and plain gRPC clients share the port\n", addr)
	d.printf("         schema: %s (embedded)\n", strings.Join(serviceNames(ctx, src), ", "))
	d.printf("         script: serve.yaml (embedded): rules %s\n", ruleNames(d.upScript.Rules))

	// 1. The multiplexed client.
	d.printf("\n1. A multiplexed client (Praefect's role) dials with the backchannel handshake\n")
	mux, err := host.Dial(ctx, host.Config{Network: "tcp", Address: addr, Creds: insecure.NewCredentials()})
	if err != nil {
		return err
	}
	defer mux.Close()
	txd, err := src.FindSymbol(ctx, "gitaly.RefTransaction")
	if err != nil {
		return err
	}
	engine := script.NewEngine(d.downScript, script.Downstream, script.Options{Observer: calls.ObserverFunc(d.observeClient)})
	if err := mux.Host(host.Backchannel{Services: []protoreflect.ServiceDescriptor{txd.(protoreflect.ServiceDescriptor)}, Responder: engine}); err != nil {
		return err
	}
	d.printf("client   connected; hosts gitaly.RefTransaction on its backchannel (script client.yaml: %s)\n", ruleNames(d.downScript.Backchannel))
	peer, err := d.waitPeer(ctx)
	if err != nil {
		return err
	}
	d.printf("serve    peer %d joined from %s; reflection over its backchannel lists %s\n", peer.ID, peer.RemoteAddr, strings.Join(peer.Services, ", "))
	// Praefect's transaction, as it sends it: base64 of a JSON object.
	tx := `{"id":42,"node":"gitaly-1","primary":true}`
	md := metadata.Pairs("gitaly-reference-transaction", base64.StdEncoding.EncodeToString([]byte(tx)))
	if err := d.createBranch(ctx, mux, branchRequest("feature/demo", "main"), md, tx); err != nil {
		return err
	}

	// 2. The plain client.
	d.printf("\n2. A plain gRPC client (no handshake, so no backchannel) makes the same kind of call\n")
	plain, err := host.Dial(ctx, host.Config{Network: "tcp", Address: addr, Creds: insecure.NewCredentials(), NoMux: true})
	if err != nil {
		return err
	}
	defer plain.Close()
	d.printf("client   connected as plain gRPC (serve cannot call it back)\n")
	return d.createBranch(ctx, plain, branchRequest("main-copy", "main"), nil, "")
}

// branchRequest is the protobuf JSON of a UserCreateBranchRequest (bytes
// fields are base64 in it).
func branchRequest(branch, start string) string {
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf(`{"branch_name": %q, "start_point": %q}`, b64([]byte(branch)), b64([]byte(start)))
}

// observeClient keeps the reverse calls the client answered. The demo
// makes two, and the buffer holds more: it never blocks the client.
func (d *demo) observeClient(ev *calls.Event) {
	select {
	case d.votes <- ev:
	default:
	}
}

// waitPeer waits until serve has one peer whose services are listed.
func (d *demo) waitPeer(ctx context.Context) (serve.PeerView, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	snapshot, changes := d.srv.WatchPeers(ctx)
	for _, p := range snapshot {
		if p.Discovery != serve.DiscoveryPending {
			return p, nil
		}
	}
	for c := range changes {
		if c.Kind != serve.PeerLeft && c.Peer.Discovery != serve.DiscoveryPending {
			return c.Peer, nil
		}
	}
	return serve.PeerView{}, fmt.Errorf("demo: the client never appeared in serve's registry: %w", context.Cause(ctx))
}

// createBranch makes a forward call with request metadata md (tx is the
// transaction it carries, as JSON) and prints what happened on both sides.
func (d *demo) createBranch(ctx context.Context, conn *host.Conn, req string, md metadata.MD, tx string) error {
	method, err := dynamic.FindMethod(ctx, d.src, "gitaly.OperationService/UserCreateBranch")
	if err != nil {
		return err
	}
	in := dynamicpb.NewMessage(method.Input())
	if err := protojson.Unmarshal([]byte(req), in); err != nil {
		return err
	}
	out := dynamicpb.NewMessage(method.Output())
	d.printf("client → gitaly.OperationService/UserCreateBranch %s\n", compact(in, false))
	for k, v := range md {
		ctx = metadata.AppendToOutgoingContext(ctx, k, v[0])
		d.printf("         metadata %s: %s\n", k, v[0])
		d.printf("         (Praefect's transaction: base64 of %s)\n", tx)
	}
	callErr := conn.ClientConn().Invoke(ctx, dynamic.FullMethod(method), in, out)

	// What serve journaled during the call: reverse calls first (they end
	// before the forward call that caused them).
	for ev := range d.srv.Subscribe(ctx, serve.SubscribeOptions{Backlog: true, Filter: serve.Filter{AfterID: d.shown}}).C {
		d.shown = max(d.shown, ev.ID)
		c := ev.Call
		switch {
		case c.Dir == calls.Reverse:
			d.printf("serve  → gitaly.RefTransaction/VoteTransaction on peer %d's backchannel, while UserCreateBranch waits:\n", c.Peer.BackchannelID)
			d.printf("         %s\n", compact(first(c.Requests), false))
			if !d.hashNote {
				d.hashNote = true
				d.printf("         (reference_updates_hash: the SHA-1 of the branch name, base64 as protobuf JSON writes bytes)\n")
			}
			if c.Status.Code() == codes.OK {
				// The client answered it; its observer may run a moment
				// after serve has the answer.
				select {
				case v := <-d.votes:
					d.printf("client   answers the vote by rule %q: %s\n", v.Rule.Name, compact(first(v.Responses), true))
				case <-ctx.Done():
					return fmt.Errorf("demo: the client's answer to a vote: %w", context.Cause(ctx))
				}
			}
			d.printf("serve  ← %s %s (expect: state COMMIT)\n", calls.CodeName(c.Status.Code()), compact(first(c.Responses), true))
		default:
			who := fmt.Sprintf("peer %d", c.Peer.BackchannelID)
			if c.Peer.BackchannelID == 0 {
				who = "a plain client"
			}
			d.printf("serve    answered %s from %s by rule %q\n", c.Method, who, c.Rule.Name)
		}
	}
	if callErr != nil {
		st := status.Convert(callErr)
		d.printf("client ← %s: %s\n", calls.CodeName(st.Code()), st.Message())
		return fmt.Errorf("demo: UserCreateBranch failed with %s: %s: %w", calls.CodeName(st.Code()), st.Message(), ErrFailed)
	}
	d.printf("client ← OK %s\n", compact(out, false))
	return nil
}

// finish prints the journal and the expectations.
func (d *demo) finish() error {
	d.printf("\nserve's journal (what bcctl serve --journal FILE writes, one JSON line per call; shortened):\n")
	for ev := range d.srv.Subscribe(context.Background(), serve.SubscribeOptions{Backlog: true}).C {
		e := ev.Entry()
		var notes []string
		if e.Cause != 0 {
			notes = append(notes, fmt.Sprintf(`"cause":%d`, e.Cause))
		}
		if e.Rule != nil {
			notes = append(notes, fmt.Sprintf(`"rule":%q`, e.Rule.Name))
		}
		peer := "0"
		if e.Peer != nil {
			peer = fmt.Sprint(e.Peer.ID)
		}
		d.printf(`  {"id":%d,"dir":%q,"origin":%q,"peer":%s,"method":%q,"status":%q,%s}`+"\n",
			e.ID, e.Dir, e.Origin, peer, e.Method, statusCode(e), strings.Join(notes, ","))
	}
	report := d.srv.Check()
	d.printf("\n%s\n", report)
	if err := report.Err(); err != nil {
		return fmt.Errorf("demo: %w: %w", ErrFailed, err)
	}
	d.printf("\nNext: docs/serve.md runs the same flow with bcctl serve, bcctl call --answer and bcctl peers.\n")
	return nil
}

func statusCode(e journal.Entry) string {
	if e.Status == nil {
		return "OK"
	}
	return e.Status.Code
}

func first(msgs []proto.Message) proto.Message {
	if len(msgs) == 0 {
		return nil
	}
	return msgs[0]
}

// compact renders a message on one line with proto names and bytes fields
// as text (as --bytes text does: Gitaly's branch names are bytes); defaults
// shows fields at their default value (COMMIT is the enum's zero).
func compact(m proto.Message, defaults bool) string {
	if m == nil {
		return "{}"
	}
	b, err := protojson.MarshalOptions{UseProtoNames: true, EmitDefaultValues: defaults}.Marshal(m)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	return string(dynamic.BytesAsText(b, m.ProtoReflect().Descriptor(), nil))
}

func serviceNames(ctx context.Context, src dynamic.Source) []string {
	names, _ := src.ListServices(ctx)
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = string(n)
	}
	return out
}

func ruleNames(rules []*script.Rule) string {
	names := make([]string, len(rules))
	for i, r := range rules {
		names[i] = r.Name
	}
	return strings.Join(names, ", ")
}
