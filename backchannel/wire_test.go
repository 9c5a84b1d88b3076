package backchannel_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/listenmux"
	"github.com/hashicorp/yamux"
	"google.golang.org/grpc"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
)

// yamuxFrame is a decoded yamux frame header.
type yamuxFrame struct {
	version, typ byte
	flags        uint16
	stream       uint32
	length       uint32
}

const (
	frameData         = 0
	frameWindowUpdate = 1
	flagSYN           = 1
	flagACK           = 2
	flagRST           = 8
)

func (f yamuxFrame) String() string {
	return fmt.Sprintf("type=%d flags=%d stream=%d length=%d", f.typ, f.flags, f.stream, f.length)
}

// readFrame reads one yamux frame and returns its header and body (data
// frames only).
func readFrame(t *testing.T, r io.Reader) (yamuxFrame, []byte) {
	t.Helper()
	var hdr [12]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		t.Fatalf("read yamux header: %v", err)
	}
	f := yamuxFrame{
		version: hdr[0],
		typ:     hdr[1],
		flags:   binary.BigEndian.Uint16(hdr[2:4]),
		stream:  binary.BigEndian.Uint32(hdr[4:8]),
		length:  binary.BigEndian.Uint32(hdr[8:12]),
	}
	if f.version != 0 {
		t.Fatalf("yamux version %d, want 0", f.version)
	}
	var body []byte
	if f.typ == frameData {
		body = make([]byte, f.length)
		if _, err := io.ReadFull(r, body); err != nil {
			t.Fatalf("read data frame of %d bytes: %v", f.length, err)
		}
	}
	return f, body
}

func writeFrame(t *testing.T, w io.Writer, f yamuxFrame) {
	t.Helper()
	var hdr [12]byte
	hdr[1] = f.typ
	binary.BigEndian.PutUint16(hdr[2:4], f.flags)
	binary.BigEndian.PutUint32(hdr[4:8], f.stream)
	binary.BigEndian.PutUint32(hdr[8:12], f.length)
	if _, err := w.Write(hdr[:]); err != nil {
		t.Fatalf("write yamux header: %v", err)
	}
}

// TestClientWireFormat reads what a multiplexing client sends, byte by byte,
// as Gitaly's server would: the magic, a SYN for stream 1 with a zero window
// delta (yamux's default 256 KiB window), then HTTP/2 on stream 1 before
// any acknowledgement.
func TestClientWireFormat(t *testing.T) {
	lis := listen(t)
	ctx := testContext(t)
	cc := dialMuxed(t, transports[0], lis.Addr().String(), &namedService{})
	go testgrpc.NewTestServiceClient(cc).EmptyCall(ctx, &testgrpc.Empty{}) // makes the client connect

	conn, err := lis.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))

	magic := make([]byte, 11)
	if _, err := io.ReadFull(conn, magic); err != nil {
		t.Fatal(err)
	}
	if string(magic) != "backchannel" {
		t.Fatalf("first bytes = %q, want %q", magic, "backchannel")
	}
	syn, _ := readFrame(t, conn)
	if want := (yamuxFrame{typ: frameWindowUpdate, flags: flagSYN, stream: 1, length: 0}); syn != want {
		t.Fatalf("first frame = %v, want %v", syn, want)
	}
	data, body := readFrame(t, conn)
	if data.typ != frameData || data.stream != 1 || !bytes.HasPrefix(body, []byte("PRI * HTTP/2.0")) {
		t.Fatalf("second frame = %v %q, want HTTP/2 preface on stream 1", data, body)
	}
}

// TestServerWireFormat plays a client byte by byte against the server: the
// server acknowledges stream 1 with the window of Gitaly's server side
// (16 MiB - 256 KiB) and opens no stream of its own before a reverse call.
func TestServerWireFormat(t *testing.T) {
	srv := startServer(t, transports[0], newReverseService)
	conn, err := net.Dial("tcp", srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))

	if _, err := conn.Write([]byte("backchannel")); err != nil {
		t.Fatal(err)
	}
	writeFrame(t, conn, yamuxFrame{typ: frameWindowUpdate, flags: flagSYN, stream: 1})
	ack, _ := readFrame(t, conn)
	if want := (yamuxFrame{typ: frameWindowUpdate, flags: flagACK, stream: 1, length: 16<<20 - 256<<10}); ack != want {
		t.Fatalf("server's answer to SYN = %v, want %v", ack, want)
	}
}

// TestClientAcceptsReverseStreamBeforeAck runs a server that opens its
// reverse stream and calls the client's backchannel before it acknowledges
// the client's forward stream, which a Gitaly server may do.
func TestClientAcceptsReverseStreamBeforeAck(t *testing.T) {
	lis := listen(t)
	ctx := testContext(t)
	cc := dialMuxed(t, transports[0], lis.Addr().String(), &namedService{name: "early"})
	forward := make(chan error, 1)
	go func() {
		_, err := testgrpc.NewTestServiceClient(cc).EmptyCall(ctx, &testgrpc.Empty{})
		forward <- err
	}()

	conn, err := lis.Accept()
	if err != nil {
		t.Fatal(err)
	}
	magic := make([]byte, 11)
	if _, err := io.ReadFull(conn, magic); err != nil {
		t.Fatal(err)
	}
	cfg := yamux.DefaultConfig()
	cfg.EnableKeepAlive = false
	cfg.LogOutput = io.Discard
	session, err := yamux.Server(conn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer session.Close()

	reverse, err := grpc.NewClient("passthrough:///early", grpc.WithTransportCredentials(insecureCreds()),
		grpc.WithContextDialer(func(context.Context, string) (net.Conn, error) { return session.Open() }))
	if err != nil {
		t.Fatal(err)
	}
	defer reverse.Close()
	resp, err := testgrpc.NewTestServiceClient(reverse).UnaryCall(ctx, payloadRequest("before-ack"))
	if err != nil {
		t.Fatalf("reverse call before the forward stream is acknowledged: %v", err)
	}
	if got := string(resp.GetPayload().GetBody()); got != "early:before-ack" {
		t.Errorf("reverse call answered %q", got)
	}
	select {
	case err := <-forward:
		t.Fatalf("forward call ended (%v) though its stream was never accepted", err)
	default:
	}
}

// TestConfigurationIsValidated checks that a bad configuration fails the
// handshake with a message that says what is wrong.
func TestConfigurationIsValidated(t *testing.T) {
	tests := []struct {
		name string
		cfg  func(*backchannel.Configuration)
		want string
	}{
		{"small window", func(c *backchannel.Configuration) { c.MaximumStreamWindowSizeBytes = 1024 }, "maximum stream window 1024 bytes is below yamux's minimum of 262144"},
		{"negative backlog", func(c *backchannel.Configuration) { c.AcceptBacklog = -1 }, "accept backlog -1 must be positive"},
		{"negative write timeout", func(c *backchannel.Configuration) { c.ConnectionWriteTimeout = -time.Second }, "connection write timeout -1s must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := backchannel.DefaultConfiguration()
			tt.cfg(&cfg)
			creds := backchannel.NewClientHandshaker(nil, func() backchannel.Server { return grpc.NewServer() }, cfg).
				ClientHandshake(insecureCreds())
			client, server := net.Pipe()
			defer server.Close()
			_, _, err := creds.Clone().ClientHandshake(testContext(t), "x", client)
			if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tt.want)) {
				t.Errorf("client handshake error = %v, want it to contain %q", err, tt.want)
			}

			handshaker := backchannel.NewServerHandshaker(nil, backchannel.NewRegistry(), nil, backchannel.WithServerConfiguration(cfg))
			_, _, err = handshaker.Handshake(server, nil)
			if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tt.want)) {
				t.Errorf("server handshake error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestServerConfigurationOnTheWire checks that WithServerConfiguration
// reaches the wire: the window advertised in the ACK follows it.
func TestServerConfigurationOnTheWire(t *testing.T) {
	cfg := backchannel.DefaultServerConfiguration()
	cfg.MaximumStreamWindowSizeBytes = 1 << 20
	handshaker := backchannel.NewServerHandshaker(nil, backchannel.NewRegistry(), nil, backchannel.WithServerConfiguration(cfg))

	client, server := net.Pipe()
	defer client.Close()
	done := make(chan error, 1)
	go func() {
		conn, _, err := handshaker.Handshake(server, nil)
		if err == nil {
			conn.Close()
		}
		done <- err
	}()
	writeFrame(t, client, yamuxFrame{typ: frameWindowUpdate, flags: flagSYN, stream: 1})
	ack, _ := readFrame(t, client)
	if want := uint32(1<<20 - 256<<10); ack.length != want {
		t.Errorf("ACK window delta = %d, want %d", ack.length, want)
	}
	if err := <-done; err != nil {
		t.Fatalf("handshake: %v", err)
	}
}

// TestGitalyConfigurationLiteral uses a Configuration literal with only the
// fields Gitaly's Configuration has, on both sides, as code ported from
// Gitaly does: the fields left out take their defaults, and forward and
// reverse calls work.
func TestGitalyConfigurationLiteral(t *testing.T) {
	gitalyCfg := backchannel.Configuration{
		MaximumStreamWindowSizeBytes: 1 << 20,
		AcceptBacklog:                8,
		StreamCloseTimeout:           time.Minute,
	}
	forEachTransport(t, func(t *testing.T, tr transport) {
		lis := listen(t)
		registry := backchannel.NewRegistry()
		mux := listenmux.New(tr.server(t))
		mux.Register(backchannel.NewServerHandshaker(nil, registry, nil, backchannel.WithServerConfiguration(gitalyCfg)))
		srv := grpc.NewServer(grpc.Creds(mux))
		testgrpc.RegisterTestServiceServer(srv, newReverseService(registry))
		go srv.Serve(lis)
		t.Cleanup(srv.Stop)

		handshaker := backchannel.NewClientHandshaker(nil, func() backchannel.Server {
			s := grpc.NewServer()
			testgrpc.RegisterTestServiceServer(s, &namedService{name: "gitaly-literal"})
			return s
		}, gitalyCfg)
		cc := dial(t, lis.Addr().String(), grpc.WithTransportCredentials(handshaker.ClientHandshake(tr.client(t))))
		resp, err := testgrpc.NewTestServiceClient(cc).UnaryCall(testContext(t), payloadRequest("x"))
		if err != nil {
			t.Fatalf("call with a Gitaly-style Configuration literal: %v", err)
		}
		if got, want := string(resp.GetPayload().GetBody()), "gitaly-literal:x"; got != want {
			t.Errorf("reverse call answered %q, want %q", got, want)
		}
	})
}

// TestZeroConfigurationFieldsTakeDefaults checks on the wire that a zero
// window means each side's default: the server advertises Gitaly's 16 MiB
// for an otherwise empty server configuration.
func TestZeroConfigurationFieldsTakeDefaults(t *testing.T) {
	handshaker := backchannel.NewServerHandshaker(nil, backchannel.NewRegistry(), nil,
		backchannel.WithServerConfiguration(backchannel.Configuration{}))
	client, server := net.Pipe()
	defer client.Close()
	done := make(chan error, 1)
	go func() {
		conn, _, err := handshaker.Handshake(server, nil)
		if err == nil {
			conn.Close()
		}
		done <- err
	}()
	writeFrame(t, client, yamuxFrame{typ: frameWindowUpdate, flags: flagSYN, stream: 1})
	ack, _ := readFrame(t, client)
	if want := uint32(16<<20 - 256<<10); ack.length != want {
		t.Errorf("ACK window delta = %d, want %d (the server's default window)", ack.length, want)
	}
	if err := <-done; err != nil {
		t.Fatalf("handshake with a zero Configuration: %v", err)
	}
}
