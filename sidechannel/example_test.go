package sidechannel_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/listenmux"
	"github.com/bcctl/bcctl/sidechannel"
)

// This example plays a git fetch the way Gitaly serves it: the client sends
// its request body (git's "want" lines) through the call's sidechannel, and
// the server answers with the pack through the same stream, before the
// gRPC call itself returns.
func Example() {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("listen:", err)
		return
	}

	// The server: a backchannel-aware gRPC server whose handler opens the
	// caller's sidechannel.
	mux := listenmux.New(insecure.NewCredentials())
	mux.Register(backchannel.NewServerHandshaker(nil, backchannel.NewRegistry(), nil))
	gitaly := grpc.NewServer(grpc.Creds(mux), grpc.UnknownServiceHandler(func(_ any, stream grpc.ServerStream) error {
		if err := stream.RecvMsg(new(wrapperspb.StringValue)); err != nil {
			return err
		}
		sc, err := sidechannel.OpenSidechannel(stream.Context())
		if err != nil {
			return err
		}
		defer sc.Close()
		wants, err := io.ReadAll(sc)
		if err != nil {
			return err
		}
		fmt.Printf("server: body %q\n", wants)
		if _, err := fmt.Fprintf(sc, "PACK for %d bytes of wants", len(wants)); err != nil {
			return err
		}
		// Close the sidechannel before the response.
		if err := sc.Close(); err != nil {
			return err
		}
		return stream.SendMsg(wrapperspb.String("done"))
	}))
	defer gitaly.Stop()
	go gitaly.Serve(lis)

	// The client: one Registry per process; its backchannel hands
	// sidechannel streams to the registered calls.
	registry := sidechannel.NewRegistry()
	handshaker := sidechannel.NewClientHandshaker(nil, registry, nil, sidechannel.ClientConfiguration())
	cc, err := grpc.NewClient("passthrough:///"+lis.Addr().String(), grpc.WithTransportCredentials(handshaker.ClientHandshake(insecure.NewCredentials())))
	if err != nil {
		fmt.Println("new client:", err)
		return
	}
	defer cc.Close()

	var pack bytes.Buffer
	ctx, waiter := sidechannel.RegisterSidechannel(context.Background(), registry, func(c *sidechannel.ClientConn) error {
		if _, err := io.WriteString(c, "want 1234\nwant 5678\n"); err != nil {
			return err
		}
		if err := c.CloseWrite(); err != nil {
			return err
		}
		_, err := io.Copy(&pack, c)
		return err
	})
	defer waiter.Close()

	reply := new(wrapperspb.StringValue)
	if err := cc.Invoke(ctx, "/gitaly.SmartHTTPService/PostUploadPackWithSidechannel", wrapperspb.String("repo"), reply); err != nil {
		fmt.Println("call:", err)
		return
	}
	if err := waiter.Close(); err != nil {
		fmt.Println("sidechannel:", err)
		return
	}
	fmt.Printf("client: call %s, sidechannel %q\n", reply.GetValue(), pack.String())

	// Output:
	// server: body "want 1234\nwant 5678\n"
	// client: call done, sidechannel "PACK for 20 bytes of wants"
}
