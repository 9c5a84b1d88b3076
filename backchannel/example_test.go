package backchannel_test

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/listenmux"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// This example plays the transaction vote of Gitaly and Praefect. Praefect
// calls Gitaly over a multiplexed connection; before Gitaly answers, it asks
// Praefect through the backchannel to vote on the change. A client that does
// not multiplex gets its answer without a vote.
func Example() {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("listen:", err)
		return
	}

	// The server: a listenmux routes multiplexed connections to the
	// backchannel handshaker, which keeps each peer's backchannel in the
	// registry.
	registry := backchannel.NewRegistry()
	mux := listenmux.New(insecure.NewCredentials())
	mux.Register(backchannel.NewServerHandshaker(nil, registry, nil))

	gitaly := grpc.NewServer(grpc.Creds(mux), grpc.UnknownServiceHandler(func(_ any, stream grpc.ServerStream) error {
		if err := stream.RecvMsg(new(wrapperspb.StringValue)); err != nil {
			return err
		}
		fmt.Println("gitaly: UserCreateBranch received")

		id, err := backchannel.GetPeerID(stream.Context())
		if errors.Is(err, backchannel.ErrNonMultiplexedConnection) {
			fmt.Println("gitaly: caller does not multiplex, no vote")
			return stream.SendMsg(wrapperspb.String("created"))
		} else if err != nil {
			return err
		}

		conn, err := registry.Backchannel(id)
		if err != nil {
			return err
		}
		fmt.Println("gitaly: asking the caller to vote")
		vote := new(wrapperspb.StringValue)
		if err := conn.Invoke(stream.Context(), "/gitaly.RefTransaction/VoteTransaction", wrapperspb.String("refs/heads/feature"), vote); err != nil {
			return err
		}
		fmt.Println("gitaly: vote is", vote.GetValue())
		return stream.SendMsg(wrapperspb.String("created"))
	}))
	defer gitaly.Stop()
	go gitaly.Serve(lis)

	// The multiplexing client: its backchannel server answers the vote.
	praefect := backchannel.NewClientHandshaker(nil, func() backchannel.Server {
		return grpc.NewServer(grpc.UnknownServiceHandler(func(_ any, stream grpc.ServerStream) error {
			ref := new(wrapperspb.StringValue)
			if err := stream.RecvMsg(ref); err != nil {
				return err
			}
			fmt.Println("praefect: voting on", ref.GetValue())
			return stream.SendMsg(wrapperspb.String("COMMIT"))
		}))
	}, backchannel.DefaultConfiguration())

	createBranch := func(creds grpc.DialOption) {
		cc, err := grpc.NewClient("passthrough:///"+lis.Addr().String(), creds)
		if err != nil {
			fmt.Println("new client:", err)
			return
		}
		defer cc.Close()
		reply := new(wrapperspb.StringValue)
		if err := cc.Invoke(context.Background(), "/gitaly.OperationService/UserCreateBranch", wrapperspb.String("feature"), reply); err != nil {
			fmt.Println("UserCreateBranch:", err)
			return
		}
		fmt.Println("client: branch", reply.GetValue())
	}

	fmt.Println("-- multiplexed client")
	createBranch(grpc.WithTransportCredentials(praefect.ClientHandshake(insecure.NewCredentials())))
	fmt.Println("-- plain client")
	createBranch(grpc.WithTransportCredentials(insecure.NewCredentials()))

	// Output:
	// -- multiplexed client
	// gitaly: UserCreateBranch received
	// gitaly: asking the caller to vote
	// praefect: voting on refs/heads/feature
	// gitaly: vote is COMMIT
	// client: branch created
	// -- plain client
	// gitaly: UserCreateBranch received
	// gitaly: caller does not multiplex, no vote
	// client: branch created
}
