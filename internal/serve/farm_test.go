package serve

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/script"
)

// A peer farm is this test binary run as a child process that connects
// many multiplexed peers to a serve: the peers' side then costs the test
// process (and the race detector's goroutine limit) nothing, and the
// memory the test process measures is serve's alone.
const (
	farmAddrEnv  = "BCCTL_SERVE_FARM_ADDR"
	farmPeersEnv = "BCCTL_SERVE_FARM_PEERS"
	// farmSize is the most peers one farm process connects: under -race a
	// process may run at most 8128 goroutines, and a peer takes about 13.
	farmSize = 250
)

// runFarmIfAsked runs the farm when the environment asks for it, and
// exits.
func runFarmIfAsked() {
	addr := os.Getenv(farmAddrEnv)
	if addr == "" {
		return
	}
	n, err := strconv.Atoi(os.Getenv(farmPeersEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, "farm:", err)
		os.Exit(2)
	}
	if err := runFarm(addr, n, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "farm:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// runFarm connects n peers to addr, each answering gitaly.RefTransaction
// on its backchannel with peerScript and serving reflection, writes
// "ready" once all are connected, and closes them when in reaches EOF.
func runFarm(addr string, n int, in io.Reader, out io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	src, err := dynamic.NewSourceFromProtosetBytes(corpusProtoset())
	if err != nil {
		return err
	}
	sc, err := script.Parse(ctx, "peer.yaml", []byte(peerScript), script.Config{Upstream: src})
	if err != nil {
		return err
	}
	engine := script.NewEngine(sc, script.Downstream, script.Options{})
	d, err := src.FindSymbol(ctx, "gitaly.RefTransaction")
	if err != nil {
		return err
	}
	services := []protoreflect.ServiceDescriptor{d.(protoreflect.ServiceDescriptor)}
	factory := func() backchannel.Server {
		srv := grpc.NewServer()
		if err := dynamic.RegisterServices(srv, services, engine); err != nil {
			panic(err)
		}
		dynamic.RegisterReflection(srv, services)
		return srv
	}
	hs := backchannel.NewClientHandshaker(nil, factory, backchannel.DefaultConfiguration())
	creds := hs.ClientHandshake(insecure.NewCredentials())
	conns := make([]*grpc.ClientConn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		c, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(creds))
		if err != nil {
			return err
		}
		conns = append(conns, c)
		c.Connect()
	}
	for i, c := range conns {
		for s := c.GetState(); s != connectivity.Ready; s = c.GetState() {
			if s == connectivity.TransientFailure || !c.WaitForStateChange(ctx, s) {
				return fmt.Errorf("peer %d of %d: connection %s", i+1, n, s)
			}
		}
	}
	fmt.Fprintln(out, "ready")
	_, err = io.Copy(io.Discard, in)
	return err
}

// startFarms connects n peers to addr from child processes and
// disconnects them when the test ends.
func startFarms(t testing.TB, addr string, n int) {
	t.Helper()
	for n > 0 {
		k := min(n, farmSize)
		n -= k
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), farmAddrEnv+"="+addr, farmPeersEnv+"="+strconv.Itoa(k))
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			stdin.Close()
			if err := cmd.Wait(); err != nil {
				t.Errorf("farm: %v\n%s", err, stderr.String())
			}
		})
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if strings.TrimSpace(line) != "ready" {
			stdin.Close()
			cmd.Wait()
			t.Fatalf("farm of %d peers did not start: %q %v\n%s", k, line, err, stderr.String())
		}
	}
}
