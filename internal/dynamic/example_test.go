package dynamic_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/bcctl/bcctl/internal/corpus"
	"github.com/bcctl/bcctl/internal/dynamic"
)

// Serve the corpus without generated code, answer VoteTransaction from a
// Responder, and call it the way `bcctl call` does.
func Example() {
	ctx := context.Background()
	src, err := dynamic.NewSourceFromProtosetBytes(corpus.Protoset)
	if err != nil {
		fmt.Println(err)
		return
	}

	// The server: every corpus service, plus reflection and health.
	voter := dynamic.ResponderFunc(func(call dynamic.Call) error {
		if dynamic.MethodName(call.Method()) != "gitaly.RefTransaction/VoteTransaction" {
			return status.Errorf(codes.Unimplemented, "only votes here")
		}
		req, err := call.Recv()
		if err != nil {
			return err
		}
		fmt.Println("server: vote from", req.ProtoReflect().Get(req.ProtoReflect().Descriptor().Fields().ByName("node")))
		resp := dynamicpb.NewMessage(call.Method().Output())
		if err := dynamic.ParseJSON([]byte(`{"state": "STOP"}`), resp, src.Types()); err != nil {
			return err
		}
		return call.Send(resp)
	})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	srv := grpc.NewServer()
	if _, err := dynamic.RegisterSource(ctx, srv, src, voter); err != nil {
		fmt.Println(err)
		return
	}
	go srv.Serve(lis)
	defer srv.Stop()

	// The client: requests as JSON, responses printed as JSON.
	cc, err := grpc.NewClient("passthrough:///"+lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cc.Close()
	requests := dynamic.NewJSONRequestParser(strings.NewReader(`{"transaction_id": "17", "node": "gitaly-1", "reference_updates_hash": "abc"}`), src.Types())
	format, _ := dynamic.NewFormatter(dynamic.FormatJSON, src.Types(), dynamic.FormatOptions{})
	h := &dynamic.PrintingHandler{Out: os.Stdout, Formatter: format}
	if err := dynamic.InvokeRPC(ctx, src, cc, "gitaly.RefTransaction/VoteTransaction", nil, h, requests.Next); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("status:", h.Status.Code())

	// A call the responder refuses.
	if err := dynamic.InvokeRPC(ctx, src, cc, "acme.Users/Get", nil, h, nil); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(dynamic.FormatStatus(h.Status, src.Types()))
	// Output:
	// server: vote from gitaly-1
	// {
	//   "state": "STOP"
	// }
	// status: OK
	// ERROR:
	//   Code: Unimplemented
	//   Message: only votes here
}
