package main

import (
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// cmdFakeServer starts a listener that is not a gRPC server, for the
// connection failures bcctl must name by their cause, and sets $NAME to its
// address; it is stopped when the script ends.
//
//	bcfake http1|silent|hangup NAME
//
// http1 serves plain HTTP/1 (as python3 -m http.server would); silent
// accepts connections, reads what comes and says nothing; hangup closes
// every connection at once.
func cmdFakeServer(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: bcfake http1|silent|hangup NAME")
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	ts.Check(err)
	switch args[0] {
	case "http1":
		srv := &http.Server{Handler: http.NotFoundHandler(), ReadHeaderTimeout: time.Minute}
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = srv.Serve(lis)
		}()
		ts.Defer(func() {
			srv.Close()
			<-done
		})
	case "silent":
		ts.Defer(acceptAll(lis, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) }))
	case "hangup":
		ts.Defer(acceptAll(lis, func(c net.Conn) { c.Close() }))
	default:
		lis.Close()
		ts.Fatalf("bcfake: unknown kind %q: want http1, silent or hangup", args[0])
	}
	ts.Setenv(args[1], lis.Addr().String())
}

// acceptAll hands every connection lis accepts to handle, in its own
// goroutine; the function it returns closes lis and the connections and
// waits for the goroutines.
func acceptAll(lis net.Listener, handle func(net.Conn)) func() {
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Go(func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { handle(c) })
		}
	})
	return func() {
		lis.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}
}
