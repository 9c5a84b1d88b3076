package main

// Testscript commands for the serve, peers and demo scripts (besides the
// ones of main_test.go: bccorpus, gencerts, waitfile, exitcode):
//
//	serve-addr FILE [VAR]
//	    wait for serve's (or proxy's) --addr-file FILE and set $SERVE, or
//	    $VAR, to the first listen address, and $ADMIN to the admin
//	    address, when there is one
//	serve-peer [-plain] [-tls DIR] [-H 'name: value'] NAME ADDR
//	    connect a peer to ADDR and keep it as NAME until serve-peer-close
//	    or the end of the script; unless -plain it is multiplexed, serves
//	    gitaly.RefTransaction (votes COMMIT, except transaction 13: ABORT)
//	    and reflection on its backchannel, and waits until serve lists it
//	serve-call [-H 'name: value'] NAME METHOD JSON
//	    make a forward call on peer NAME and print "OK {response}" (bytes
//	    fields as text, as --bytes text shows them) or
//	    "CODE: message" (a non-OK status is not a failure of the command)
//	serve-peer-close NAME
//	    close peer NAME's connection

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/bcctl/bcctl/internal/admin"
	"github.com/bcctl/bcctl/internal/admin/adminpb"
	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/host"
	"github.com/bcctl/bcctl/internal/script"
)

// cmdServeUntil runs a program again and again (for at most 20s) until its
// stdout matches a regular expression; then stdout is that output.
func cmdServeUntil(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: serve-until REGEXP PROGRAM ARGS...")
	}
	re, err := regexp.Compile(args[0])
	ts.Check(err)
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		_ = ts.Exec(args[1], args[2:]...)
		if re.MatchString(ts.ReadFile("stdout")) {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("serve-until: %s never printed a match for %q; last output:\n%s%s", args[1], args[0], ts.ReadFile("stdout"), ts.ReadFile("stderr"))
		}
		<-tick.C
	}
}

func cmdServeWaitPeers(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: serve-wait-peers ADMIN N")
	}
	n, err := strconv.Atoi(args[1])
	ts.Check(err)
	var got int
	err = waitAdminPeers(args[0], 20*time.Second, func(peers map[uint64]*adminpb.Peer) bool {
		got = len(peers)
		return len(peers) == n && noneDiscovering(peers)
	})
	if err != nil {
		ts.Fatalf("serve-wait-peers: %d peers, want %d: %v", got, n, err)
	}
}

var errSettled = errors.New("settled")

// waitAdminPeers follows the peers of the serve whose admin API is at addr
// until done says they are as wanted, for up to timeout.
func waitAdminPeers(addr string, timeout time.Duration, done func(map[uint64]*adminpb.Peer) bool) error {
	c, err := admin.NewClient(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	peers := map[uint64]*adminpb.Peer{}
	check := func() error {
		if done(peers) {
			return errSettled
		}
		return nil
	}
	err = c.WatchPeers(ctx, func(ps []*adminpb.Peer) error {
		for _, p := range ps {
			peers[p.Id] = p
		}
		return check()
	}, func(ch *adminpb.PeerChange) error {
		if ch.Kind == "left" {
			delete(peers, ch.Peer.Id)
		} else {
			peers[ch.Peer.Id] = ch.Peer
		}
		return check()
	})
	if errors.Is(err, errSettled) {
		return nil
	}
	if err == nil {
		err = errors.New("the peer stream ended")
	}
	return err
}

// noneDiscovering reports whether serve has listed the services of every
// peer.
func noneDiscovering(peers map[uint64]*adminpb.Peer) bool {
	for _, p := range peers {
		if p.Discovery == "pending" {
			return false
		}
	}
	return true
}

func cmdServeAddr(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 || len(args) > 2 {
		ts.Fatalf("usage: serve-addr FILE [VAR]")
	}
	path := ts.MkAbs(args[0])
	listenVar := "SERVE"
	if len(args) == 2 {
		listenVar = args[1]
	}
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		data, err := os.ReadFile(path)
		if err == nil {
			first := true
			for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
				kind, addr, _ := strings.Cut(line, " ")
				switch {
				case kind == "listen" && first:
					ts.Setenv(listenVar, addr)
					first = false
				case kind == "admin":
					ts.Setenv("ADMIN", addr)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("serve-addr: %s did not appear within 20s (did serve start?)", args[0])
		}
		<-tick.C
	}
}

// scriptPeers are the peers of one script, by name.
type scriptPeers struct {
	mu sync.Mutex
	m  map[string]*host.Conn
}

type peersKey struct{}

// scriptPeersOf returns the peers of the running script (scriptParams'
// Setup makes them).
func scriptPeersOf(ts *testscript.TestScript) *scriptPeers {
	return ts.Value(peersKey{}).(*scriptPeers)
}

// servePeerScript is what serve-peer's peers answer on their backchannel.
const servePeerScript = `
backchannel:
  - match: {method: gitaly.RefTransaction/VoteTransaction, request: {transaction_id: 13}}
    reply: {state: ABORT}
  - match: {method: gitaly.RefTransaction/VoteTransaction}
    reply: {state: COMMIT}
  - match: {method: gitaly.RefTransaction/StopTransaction}
    reply: {}
`

func cmdServePeer(ts *testscript.TestScript, neg bool, args []string) {
	fs := flag.NewFlagSet("serve-peer", flag.ContinueOnError)
	plain := fs.Bool("plain", false, "connect as a plain gRPC client")
	tlsDir := fs.String("tls", "", "verify serve's certificate and present a client certificate from this directory (gencerts)")
	ts.Check(fs.Parse(args))
	if neg || fs.NArg() != 2 {
		ts.Fatalf("usage: serve-peer [-plain] [-tls DIR] NAME ADDR")
	}
	name, addr := fs.Arg(0), fs.Arg(1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var creds credentials.TransportCredentials = insecure.NewCredentials()
	if *tlsDir != "" {
		dir := ts.MkAbs(*tlsDir)
		flags := TLSFlags{CACert: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(dir, "client.pem"), Key: filepath.Join(dir, "client-key.pem"), ServerName: "localhost"}
		c, err := flags.ClientCredentials()
		ts.Check(err)
		creds = c
	}
	network, address := "tcp", addr
	if strings.HasPrefix(addr, "unix:") {
		network, address = "unix", strings.TrimPrefix(addr, "unix:")
	}
	conn, err := host.Dial(ctx, host.Config{Network: network, Address: address, Creds: creds, NoMux: *plain})
	ts.Check(err)
	if !*plain {
		src := corpusSource()
		sc, err := script.Parse(ctx, "peer.yaml", []byte(servePeerScript), script.Config{Upstream: src})
		ts.Check(err)
		d, err := src.FindSymbol(ctx, "gitaly.RefTransaction")
		ts.Check(err)
		ts.Check(conn.Host(host.Backchannel{
			Services:  []protoreflect.ServiceDescriptor{d.(protoreflect.ServiceDescriptor)},
			Responder: script.NewEngine(sc, script.Downstream, script.Options{}),
		}))
	}
	p := scriptPeersOf(ts)
	p.mu.Lock()
	p.m[name] = conn
	p.mu.Unlock()
	ts.Defer(func() { conn.Close() })
}

func cmdServeCall(ts *testscript.TestScript, neg bool, args []string) {
	fs := flag.NewFlagSet("serve-call", flag.ContinueOnError)
	var headers headerList
	fs.Var(&headers, "H", "request metadata 'name: value'")
	ts.Check(fs.Parse(args))
	if neg || fs.NArg() != 3 {
		ts.Fatalf("usage: serve-call [-H 'name: value'] NAME METHOD JSON")
	}
	conn := servePeerNamed(ts, fs.Arg(0))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	src := corpusSource()
	md, err := dynamic.FindMethod(ctx, src, fs.Arg(1))
	ts.Check(err)
	in := dynamicpb.NewMessage(md.Input())
	ts.Check(protojson.Unmarshal([]byte(fs.Arg(2)), in))
	out := dynamicpb.NewMessage(md.Output())
	meta, err := dynamic.ParseHeaders(headers)
	ts.Check(err)
	ctx = metadata.NewOutgoingContext(ctx, meta)
	if err := conn.ClientConn().Invoke(ctx, dynamic.FullMethod(md), in, out); err != nil {
		st := status.Convert(err)
		fmt.Fprintf(ts.Stdout(), "%s: %s\n", calls.CodeName(st.Code()), st.Message())
		return
	}
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(out)
	ts.Check(err)
	// Bytes as text, as --bytes text prints them: Gitaly's names read as such.
	fmt.Fprintf(ts.Stdout(), "OK %s\n", dynamic.BytesAsText(b, md.Output(), nil))
}

func cmdServePeerClose(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: serve-peer-close NAME")
	}
	ts.Check(servePeerNamed(ts, args[0]).Close())
}

func servePeerNamed(ts *testscript.TestScript, name string) *host.Conn {
	p := scriptPeersOf(ts)
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.m[name]
	if !ok {
		ts.Fatalf("no peer named %q (connect it with serve-peer %s ADDR)", name, name)
	}
	return c
}

type headerList []string

func (h *headerList) String() string     { return strings.Join(*h, ", ") }
func (h *headerList) Set(v string) error { *h = append(*h, v); return nil }
