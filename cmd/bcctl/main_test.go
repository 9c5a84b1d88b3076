package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
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
//	bcserver [-plain] [-tls DIR] [-mtls] [-unix PATH] [-noreflect] NAME
//	    start a test server (testserver_test.go) and set $NAME to its
//	    address; stopped when the script ends
//	bccall-peers NAME METHOD JSON
//	    make a reverse call into every peer connected to server NAME
//	    (waiting up to 10s for one) and print each answer
//	bcserver-log NAME
//	    print what server NAME's own reverse calls got ("vote COMMIT")
//	gencerts DIR
//	    write a test CA and certificates (certs_test.go) into DIR
//	waitfile [-timeout 10s] FILE [REGEXP]
//	    wait until FILE exists (and matches REGEXP)
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

var (
	extraScriptCmdsMu sync.Mutex
	extraScriptCmds   = map[string]func(ts *testscript.TestScript, neg bool, args []string){}
)

// registerScriptCmd adds a testscript command for every script of this
// package. Test files of other commands (serve, peers, ...) call it from an
// init function to add their own helpers.
func registerScriptCmd(name string, cmd func(ts *testscript.TestScript, neg bool, args []string)) {
	extraScriptCmdsMu.Lock()
	defer extraScriptCmdsMu.Unlock()
	extraScriptCmds[name] = cmd
}

func scriptCmds() map[string]func(ts *testscript.TestScript, neg bool, args []string) {
	cmds := map[string]func(ts *testscript.TestScript, neg bool, args []string){
		"bcserver":     cmdBCServer,
		"bccall-peers": cmdCallPeers,
		"bcserver-log": cmdServerLog,
		"gencerts":     cmdGenCerts,
		"waitfile":     cmdWaitFile,
	}
	extraScriptCmdsMu.Lock()
	defer extraScriptCmdsMu.Unlock()
	for k, v := range extraScriptCmds {
		cmds[k] = v
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
	if len(args) != 3 {
		ts.Fatalf("usage: bccall-peers NAME METHOD JSON")
	}
	srv := servers(ts).get(ts, args[0])
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

func cmdServerLog(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: bcserver-log NAME")
	}
	srv := servers(ts).get(ts, args[0])
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for _, l := range srv.reverse {
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
