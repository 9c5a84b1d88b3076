package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/bcctl/bcctl/internal/corpus"
	"github.com/bcctl/bcctl/internal/host"
)

// TestMain lets testscripts run `bcctl` as a command: the test binary
// re-executes itself as bcctl.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"bcctl": func() { os.Exit(Main()) },
	})
}

// TestScripts runs every testscript in testdata/script. Scripts have these
// commands besides testscript's own (see scriptCmds):
//
//	bcserver [-plain] [-tls DIR] [-mtls] [-unix PATH] [-noreflect|-stallreflect] NAME
//	    start a test server (testserver_test.go) and set $NAME to its
//	    address; stopped when the script ends
//	bcfake http1|silent|hangup NAME
//	    start a listener that is not a gRPC server (fakeservers_test.go)
//	bccall-peers [-bg] NAME METHOD JSON
//	    make a reverse call into every peer connected to server NAME
//	    (waiting up to 10s for one) and print each answer; with -bg, go on
//	    at once and make the calls meanwhile (into the client the script
//	    starts next), printing nothing
//	bcserver-log NAME [N]
//	    print what server NAME's own reverse calls got ("vote COMMIT"),
//	    after waiting (up to 10s) until it has made N of them
//	bcserver-stop NAME
//	    stop server NAME now (its peers lose their connection)
//	bcserver-release NAME
//	    let server NAME make the reverse call of a UserDeleteBranch it has
//	    answered (StopTransaction), once the script has seen the caller
//	    finish the call (waiting up to 10s for a UserDeleteBranch)
//	bclist-peers NAME
//	    list, by reflection over each connected peer's backchannel, the
//	    services the peer hosts (waiting up to 10s for a peer)
//	bccorpus DIR
//	    write the schema corpus of internal/corpus into DIR: the .proto
//	    files at their import paths and corpus.protoset
//	gencerts DIR
//	    write a test CA and certificates (certs_test.go) into DIR
//	waitfile [-timeout 10s] FILE [TEXT]
//	    wait until FILE exists (and contains TEXT)
//	exitcode N PROGRAM ARGS...
//	    run PROGRAM like exec and require exit code N; stdout and stderr
//	    are checked afterwards as after exec
var updateScripts = flag.Bool("update-scripts", false, "update testscript golden output in place")

func TestScripts(t *testing.T) {
	t.Parallel()
	testscript.Run(t, scriptParams("testdata/script"))
}

// scriptParams are the testscript parameters of bcctl's scripts.
func scriptParams(dir string) testscript.Params {
	return testscript.Params{
		Dir:                 dir,
		Cmds:                scriptCmds(),
		UpdateScripts:       *updateScripts,
		RequireUniqueNames:  true,
		RequireExplicitExec: false,
		Setup: func(env *testscript.Env) error {
			env.Setenv("NO_COLOR", "1")
			env.Setenv("BCCTL_LOG", "off")
			env.Values[serversKey{}] = &scriptServers{m: map[string]*testServer{}}
			env.Values[peersKey{}] = &scriptPeers{m: map[string]*host.Conn{}}
			return nil
		},
	}
}

type serversKey struct{}

type scriptServers struct {
	mu sync.Mutex
	m  map[string]*testServer
}

func servers(ts *testscript.TestScript) *scriptServers {
	return ts.Value(serversKey{}).(*scriptServers)
}

func (s *scriptServers) get(ts *testscript.TestScript, name string) *testServer {
	s.mu.Lock()
	defer s.mu.Unlock()
	srv, ok := s.m[name]
	if !ok {
		ts.Fatalf("no server named %q (start it with bcserver %s)", name, name)
	}
	return srv
}

func scriptCmds() map[string]func(ts *testscript.TestScript, neg bool, args []string) {
	cmds := map[string]func(ts *testscript.TestScript, neg bool, args []string){
		"bcserver":         cmdBCServer,
		"bccall-peers":     cmdCallPeers,
		"bcwait-peers":     cmdWaitPeers,
		"bcserver-log":     cmdServerLog,
		"gencerts":         cmdGenCerts,
		"waitfile":         cmdWaitFile,
		"exitcode":         cmdExitCode,
		"bcserver-stop":    cmdServerStop,
		"bcserver-release": cmdServerRelease,
		"bclist-peers":     cmdListPeers,
		"bccorpus":         cmdCorpus,
		"bcfake":           cmdFakeServer,
		// serve, peers and demo (serve_script_test.go)
		"serve-addr":       cmdServeAddr,
		"serve-peer":       cmdServePeer,
		"serve-call":       cmdServeCall,
		"serve-peer-close": cmdServePeerClose,
		"serve-wait-peers": cmdServeWaitPeers,
		"serve-until":      cmdServeUntil,
	}
	return cmds
}

func cmdBCServer(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! bcserver")
	}
	fs := flag.NewFlagSet("bcserver", flag.ContinueOnError)
	var opts testServerOptions
	fs.BoolVar(&opts.Plain, "plain", false, "plain gRPC server (no listenmux)")
	fs.StringVar(&opts.TLSDir, "tls", "", "serve TLS with the certificates in this directory")
	fs.BoolVar(&opts.MTLS, "mtls", false, "require client certificates")
	fs.StringVar(&opts.Unix, "unix", "", "listen on this unix socket")
	fs.BoolVar(&opts.NoReflection, "noreflect", false, "no reflection service")
	fs.BoolVar(&opts.StallReflection, "stallreflect", false, "a reflection service that never answers")
	ts.Check(fs.Parse(args))
	if fs.NArg() != 1 {
		ts.Fatalf("usage: bcserver [flags] NAME")
	}
	name := fs.Arg(0)
	if opts.TLSDir != "" {
		opts.TLSDir = ts.MkAbs(opts.TLSDir)
	}
	if opts.Unix != "" {
		opts.Unix = ts.MkAbs(opts.Unix)
	}
	srv, err := startTestServer(opts)
	ts.Check(err)
	ts.Defer(srv.Stop)
	s := servers(ts)
	s.mu.Lock()
	s.m[name] = srv
	s.mu.Unlock()
	ts.Setenv(name, srv.Addr)
}

func cmdCallPeers(ts *testscript.TestScript, neg bool, args []string) {
	background := len(args) > 0 && args[0] == "-bg"
	if background {
		args = args[1:]
	}
	if len(args) != 3 || (background && neg) {
		ts.Fatalf("usage: bccall-peers [-bg] NAME METHOD JSON")
	}
	srv := servers(ts).get(ts, args[0])
	if background {
		// The calls wait for the client the script starts next; what they
		// got is that client's to tell. The script's end waits for them.
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _ = srv.callPeers(context.Background(), args[1], args[2], 10*time.Second)
		}()
		ts.Defer(func() { <-done })
		return
	}
	lines, err := srv.callPeers(context.Background(), args[1], args[2], 10*time.Second)
	if neg {
		if err == nil {
			ts.Fatalf("bccall-peers succeeded")
		}
		return
	}
	ts.Check(err)
	for _, l := range lines {
		fmt.Fprintln(ts.Stdout(), l)
	}
}

// cmdWaitPeers waits until the server has exactly N peers: a script
// that starts clients one after the other waits for the last one to have
// left, so that bccall-peers reaches the new one.
func cmdWaitPeers(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: bcwait-peers NAME N")
	}
	n, err := strconv.Atoi(args[1])
	ts.Check(err)
	ts.Check(servers(ts).get(ts, args[0]).waitPeerCount(context.Background(), n, 10*time.Second))
}

func cmdServerLog(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 || len(args) > 2 {
		ts.Fatalf("usage: bcserver-log NAME [N]")
	}
	srv := servers(ts).get(ts, args[0])
	n := 0
	if len(args) == 2 {
		var err error
		n, err = strconv.Atoi(args[1])
		ts.Check(err)
	}
	for _, l := range srv.reverseLog(n, 10*time.Second) {
		fmt.Fprintln(ts.Stdout(), l)
	}
}

func cmdGenCerts(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: gencerts DIR")
	}
	dir := ts.MkAbs(args[0])
	ts.Check(os.MkdirAll(dir, 0o755))
	ts.Check(writeTestCerts(dir))
}

func cmdWaitFile(ts *testscript.TestScript, neg bool, args []string) {
	fs := flag.NewFlagSet("waitfile", flag.ContinueOnError)
	timeout := fs.Duration("timeout", 10*time.Second, "")
	ts.Check(fs.Parse(args))
	if neg || fs.NArg() < 1 || fs.NArg() > 2 {
		ts.Fatalf("usage: waitfile [-timeout D] FILE [TEXT]")
	}
	path := ts.MkAbs(fs.Arg(0))
	want := fs.Arg(1)
	deadline := time.Now().Add(*timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		data, err := os.ReadFile(path)
		if err == nil && (want == "" || strings.Contains(string(data), want)) {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("waitfile: %s did not appear (with %q) within %s", filepath.Base(path), want, *timeout)
		}
		<-tick.C
	}
}

func cmdExitCode(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exitcode N PROGRAM ARGS...")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("exitcode: %v", err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited with %d, want %d", args[1], got, want)
	}
}

func cmdServerStop(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: bcserver-stop NAME")
	}
	servers(ts).get(ts, args[0]).Stop()
}

func cmdServerRelease(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: bcserver-release NAME")
	}
	ts.Check(servers(ts).get(ts, args[0]).release(10 * time.Second))
}

func cmdListPeers(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: bclist-peers NAME")
	}
	srv := servers(ts).get(ts, args[0])
	lines, err := srv.listPeers(context.Background(), 10*time.Second)
	ts.Check(err)
	for _, l := range lines {
		fmt.Fprintln(ts.Stdout(), l)
	}
}

func cmdCorpus(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: bccorpus DIR")
	}
	ts.Check(writeCorpus(ts.MkAbs(args[0])))
}

// writeCorpus writes the schema corpus of internal/corpus into dir: the
// .proto files at their import paths and corpus.protoset.
func writeCorpus(dir string) error {
	err := fs.WalkDir(corpus.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := corpus.FS.ReadFile(path)
		if err != nil {
			return err
		}
		target := filepath.Join(dir, filepath.FromSlash(path))
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "corpus.protoset"), corpus.Protoset, 0o644)
}
