package sidechannel_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/listenmux"
	"github.com/bcctl/bcctl/sidechannel"
)

// The benchmarks move 64 MiB per operation, one way, through three lanes
// in the same run, over TCP on 127.0.0.1:
//
//	go test -run '^$' -bench Throughput -count 6 ./sidechannel | tee new.txt
//	benchstat new.txt
//
// "tcp" is the bytes on a plain TCP connection; "grpc" is gRPC streaming
// of 1 MiB messages on a multiplexed connection; "sidechannel" is one call
// whose sidechannel carries the bytes, on the same connection. "up" goes
// from the client to the server (the framed body), "down" back (the raw
// response). Both sides of the multiplexed connection have the yamux
// stream window the benchmark names; the window that matters is the
// receiving side's, and the libraries' defaults are 16 MiB on the server
// (up) and 256 KiB on the client (down). The lanes run in alternating
// batches, so load from other processes falls on all of them alike.

const (
	benchChunk = 1 << 20
	benchTotal = 64 << 20
)

var benchData = make([]byte, benchChunk)

// benchServer serves the three lanes' server sides.
type benchServer struct {
	tcpAddr string
	muxAddr string
}

func startBenchServer(b *testing.B, window uint32) *benchServer {
	tcpLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { tcpLis.Close() })
	go serveTCPBench(tcpLis)

	muxLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	mux := listenmux.New(insecure.NewCredentials())
	cfg := backchannel.DefaultServerConfiguration()
	cfg.MaximumStreamWindowSizeBytes = window
	mux.Register(backchannel.NewServerHandshaker(nil, backchannel.NewRegistry(), nil, backchannel.WithServerConfiguration(cfg)))
	srv := grpc.NewServer(grpc.Creds(mux), grpc.UnknownServiceHandler(serveGRPCBench))
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(muxLis)
	}()
	b.Cleanup(func() {
		srv.Stop()
		<-served
	})
	return &benchServer{tcpAddr: tcpLis.Addr().String(), muxAddr: muxLis.Addr().String()}
}

// serveTCPBench answers each command byte of each connection: 'u' reads
// benchTotal bytes and acknowledges with one byte, 'd' writes benchTotal.
func serveTCPBench(lis net.Listener) {
	for {
		conn, err := lis.Accept()
		if err != nil {
			return
		}
		go func() {
			defer conn.Close()
			buf := make([]byte, benchChunk)
			cmd := make([]byte, 1)
			for {
				if _, err := io.ReadFull(conn, cmd); err != nil {
					return
				}
				var err error
				switch cmd[0] {
				case 'u':
					if _, err = io.ReadFull(conn, make([]byte, 0)); err == nil {
						err = drain(conn, buf, benchTotal)
					}
					if err == nil {
						_, err = conn.Write(cmd)
					}
				case 'd':
					err = send(conn)
				}
				if err != nil {
					return
				}
			}
		}()
	}
}

// serveGRPCBench serves /bench/Up and /bench/Down as gRPC streams of 1 MiB
// messages, and /bench/Side{Up,Down} through the call's sidechannel.
func serveGRPCBench(_ any, stream grpc.ServerStream) error {
	method, _ := grpc.MethodFromServerStream(stream)
	msg := new(wrapperspb.BytesValue)
	switch method {
	case "/bench/Up":
		if err := recvAll(stream.RecvMsg); err != nil {
			return err
		}
		return stream.SendMsg(msg)
	case "/bench/Down":
		if err := stream.RecvMsg(msg); err != nil {
			return err
		}
		out := wrapperspb.Bytes(benchData)
		for range benchTotal / benchChunk {
			if err := stream.SendMsg(out); err != nil {
				return err
			}
		}
		return nil
	}

	if err := stream.RecvMsg(msg); err != nil {
		return err
	}
	sc, err := sidechannel.OpenSidechannel(stream.Context())
	if err != nil {
		return err
	}
	defer sc.Close()
	switch method {
	case "/bench/SideUp":
		err = drain(sc, make([]byte, benchChunk), benchTotal)
		if err == nil {
			_, err = sc.Read(make([]byte, 1))
			if errors.Is(err, io.EOF) {
				err = nil
			}
		}
	default:
		err = send(sc)
	}
	if err != nil {
		return err
	}
	if err := sc.Close(); err != nil {
		return err
	}
	return stream.SendMsg(msg)
}

// recvAll receives BytesValue messages with recv until the stream ends and
// checks that they carried benchTotal bytes.
func recvAll(recv func(any) error) error {
	total := 0
	msg := new(wrapperspb.BytesValue)
	for {
		err := recv(msg)
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return err
		}
		total += len(msg.GetValue())
	}
	if total != benchTotal {
		return fmt.Errorf("received %d bytes, want %d", total, benchTotal)
	}
	return nil
}

// drain reads exactly n bytes from r.
func drain(r io.Reader, buf []byte, n int) error {
	for n > 0 {
		k, err := r.Read(buf[:min(len(buf), n)])
		n -= k
		if err != nil && n > 0 {
			return fmt.Errorf("%d bytes short: %w", n, err)
		}
	}
	return nil
}

// send writes benchTotal bytes to w in 1 MiB writes.
func send(w io.Writer) error {
	for range benchTotal / benchChunk {
		if _, err := w.Write(benchData); err != nil {
			return err
		}
	}
	return nil
}

// benchLane is one way of moving benchTotal bytes.
type benchLane struct {
	name string
	op   func(ctx context.Context) error
}

// newBenchLanes connects to s: plain TCP, and a multiplexed connection
// whose client has the given stream window, carrying both the gRPC
// streams and the sidechannels.
func newBenchLanes(b *testing.B, s *benchServer, up bool, window uint32) []benchLane {
	conn, err := net.Dial("tcp", s.tcpAddr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })

	registry := sidechannel.NewRegistry()
	cfg := sidechannel.ClientConfiguration()
	cfg.MaximumStreamWindowSizeBytes = window
	handshaker := sidechannel.NewClientHandshaker(nil, registry, nil, cfg)
	cc := dial(b, s.muxAddr, grpc.WithTransportCredentials(handshaker.ClientHandshake(insecure.NewCredentials())))

	buf := make([]byte, benchChunk)
	if up {
		return []benchLane{
			{name: "tcp", op: func(context.Context) error {
				if _, err := conn.Write([]byte{'u'}); err != nil {
					return err
				}
				if err := send(conn); err != nil {
					return err
				}
				_, err := io.ReadFull(conn, buf[:1])
				return err
			}},
			{name: "grpc", op: func(ctx context.Context) error {
				stream, err := cc.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true}, "/bench/Up")
				if err != nil {
					return err
				}
				msg := wrapperspb.Bytes(benchData)
				for range benchTotal / benchChunk {
					if err := stream.SendMsg(msg); err != nil {
						return err
					}
				}
				if err := stream.CloseSend(); err != nil {
					return err
				}
				return stream.RecvMsg(new(wrapperspb.BytesValue))
			}},
			{name: "sidechannel", op: sidechannelOp(cc, registry, "/bench/SideUp", func(c *sidechannel.ClientConn) error {
				if err := send(c); err != nil {
					return err
				}
				if err := c.CloseWrite(); err != nil {
					return err
				}
				_, err := io.ReadAll(c)
				return err
			})},
		}
	}
	return []benchLane{
		{name: "tcp", op: func(context.Context) error {
			if _, err := conn.Write([]byte{'d'}); err != nil {
				return err
			}
			return drain(conn, buf, benchTotal)
		}},
		{name: "grpc", op: func(ctx context.Context) error {
			stream, err := cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, "/bench/Down")
			if err != nil {
				return err
			}
			if err := stream.SendMsg(&wrapperspb.BytesValue{}); err != nil {
				return err
			}
			if err := stream.CloseSend(); err != nil {
				return err
			}
			return recvAll(stream.RecvMsg)
		}},
		{name: "sidechannel", op: sidechannelOp(cc, registry, "/bench/SideDown", func(c *sidechannel.ClientConn) error {
			if err := c.CloseWrite(); err != nil {
				return err
			}
			return drain(c, buf, benchTotal)
		})},
	}
}

// sidechannelOp makes one call to method whose sidechannel runs callback.
func sidechannelOp(cc *grpc.ClientConn, registry *sidechannel.Registry, method string, callback func(*sidechannel.ClientConn) error) func(context.Context) error {
	return func(ctx context.Context) error {
		ctx, waiter := sidechannel.RegisterSidechannel(ctx, registry, callback)
		defer waiter.Close()
		if err := cc.Invoke(ctx, method, &wrapperspb.BytesValue{}, new(wrapperspb.BytesValue)); err != nil {
			return err
		}
		return waiter.Close()
	}
}

// BenchmarkThroughput moves 64 MiB per operation through each lane, each
// way, with 256 KiB windows (Gitaly's client's, yamux's default) and with
// 16 MiB (Gitaly's server's). It reports each lane's MB/s, grpc and
// sidechannel as a fraction of tcp, and sidechannel over grpc.
func BenchmarkThroughput(b *testing.B) {
	for _, dir := range []struct {
		name string
		up   bool
	}{{"up", true}, {"down", false}} {
		for _, window := range []struct {
			name  string
			bytes uint32
		}{{"window=256KiB", 256 << 10}, {"window=16MiB", 16 << 20}} {
			b.Run(dir.name+"/"+window.name, func(b *testing.B) {
				lanes := newBenchLanes(b, startBenchServer(b, window.bytes), dir.up, window.bytes)
				ctx := testContext(b)
				elapsed := make([]time.Duration, len(lanes))
				b.ResetTimer()
				for round := range b.N {
					for k := range lanes {
						i := (round + k) % len(lanes)
						start := time.Now()
						if err := lanes[i].op(ctx); err != nil {
							b.Fatalf("%s: %v", lanes[i].name, err)
						}
						elapsed[i] += time.Since(start)
					}
				}
				b.StopTimer()
				rate := func(i int) float64 { return float64(b.N) * benchTotal / 1e6 / elapsed[i].Seconds() }
				for i, l := range lanes {
					b.ReportMetric(rate(i), l.name+"-MB/s")
				}
				b.ReportMetric(rate(1)/rate(0), "grpc/tcp")
				b.ReportMetric(rate(2)/rate(0), "sidechannel/tcp")
				b.ReportMetric(rate(2)/rate(1), "sidechannel/grpc")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}
