package dynamic

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

// The benchmark compares the dynamic server with grpc-go's compiled
// grpc.testing.TestService answering the same UnaryCall, in one run, over
// plain TCP on loopback, driven by the same compiled client.
//
// compiledTestService answers UnaryCall the way grpc-go's interop test
// server does (google.golang.org/grpc/interop.NewTestServer, whose package
// pulls in oauth2 and xds modules bcctl does not depend on): echo the
// interop metadata keys, fail with response_status when set, else answer a
// COMPRESSABLE payload of response_size zero bytes.
type compiledTestService struct {
	testgrpc.UnimplementedTestServiceServer
}

const (
	initialMetadataKey  = "x-grpc-test-echo-initial"
	trailingMetadataKey = "x-grpc-test-echo-trailing-bin"
)

func (compiledTestService) UnaryCall(ctx context.Context, in *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v, ok := md[initialMetadataKey]; ok {
			_ = grpc.SendHeader(ctx, metadata.Pairs(initialMetadataKey, v[0]))
		}
		if v, ok := md[trailingMetadataKey]; ok {
			_ = grpc.SetTrailer(ctx, metadata.Pairs(trailingMetadataKey, v[0]))
		}
	}
	if st := in.GetResponseStatus(); st != nil && st.Code != 0 {
		return nil, status.Error(codes.Code(st.Code), st.Message)
	}
	if in.GetResponseSize() < 0 {
		return nil, status.Errorf(codes.InvalidArgument, "requested a response with invalid length %d", in.GetResponseSize())
	}
	return &testpb.SimpleResponse{Payload: &testpb.Payload{
		Type: testpb.PayloadType_COMPRESSABLE,
		Body: make([]byte, in.GetResponseSize()),
	}}, nil
}

// dynamicTestService is the same UnaryCall as a Responder working on
// dynamic messages only (no generated types).
func dynamicTestService(svc protoreflect.ServiceDescriptor) Responder {
	unary := svc.Methods().ByName("UnaryCall")
	in := unary.Input().Fields()
	respSize, respStatus := in.ByName("response_size"), in.ByName("response_status")
	statusCode, statusMsg := respStatus.Message().Fields().ByName("code"), respStatus.Message().Fields().ByName("message")
	outType := dynamicpb.NewMessageType(unary.Output())
	payloadField := unary.Output().Fields().ByName("payload")
	payloadType, payloadBody := payloadField.Message().Fields().ByName("type"), payloadField.Message().Fields().ByName("body")
	return ResponderFunc(func(call Call) error {
		if call.Method() != unary {
			return status.Errorf(codes.Unimplemented, "%s is not benchmarked", MethodName(call.Method()))
		}
		req, err := call.Recv()
		if err != nil {
			return err
		}
		md := call.Metadata()
		if v, ok := md[initialMetadataKey]; ok {
			_ = call.SendHeader(metadata.Pairs(initialMetadataKey, v[0]))
		}
		if v, ok := md[trailingMetadataKey]; ok {
			call.SetTrailer(metadata.Pairs(trailingMetadataKey, v[0]))
		}
		r := req.ProtoReflect()
		if r.Has(respStatus) {
			st := r.Get(respStatus).Message()
			if code := st.Get(statusCode).Int(); code != 0 {
				return status.Error(codes.Code(code), st.Get(statusMsg).String())
			}
		}
		size := r.Get(respSize).Int()
		if size < 0 {
			return status.Errorf(codes.InvalidArgument, "requested a response with invalid length %d", size)
		}
		resp := outType.New()
		payload := resp.Mutable(payloadField).Message()
		payload.Set(payloadType, protoreflect.ValueOfEnum(protoreflect.EnumNumber(testpb.PayloadType_COMPRESSABLE)))
		payload.Set(payloadBody, protoreflect.ValueOfBytes(make([]byte, size)))
		return call.Send(resp.Interface())
	})
}

func startBenchServer(b testing.TB, register func(*grpc.Server)) testgrpc.TestServiceClient {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := grpc.NewServer()
	register(srv)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	b.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return testgrpc.NewTestServiceClient(dial(b, lis.Addr().String()))
}

func testServiceDescriptor() protoreflect.ServiceDescriptor {
	return testpb.File_grpc_testing_test_proto.Services().ByName("TestService")
}

var benchServers = []struct {
	name     string
	register func(testing.TB, *grpc.Server)
}{
	{"compiled", func(_ testing.TB, s *grpc.Server) { testgrpc.RegisterTestServiceServer(s, compiledTestService{}) }},
	{"dynamic", func(tb testing.TB, s *grpc.Server) {
		svc := testServiceDescriptor()
		if err := RegisterServices(s, []protoreflect.ServiceDescriptor{svc}, dynamicTestService(svc)); err != nil {
			tb.Fatal(err)
		}
	}},
}

// Both servers give the same answers (so the benchmark compares equal work).
func TestBenchmarkServersAgree(t *testing.T) {
	reqs := []*testpb.SimpleRequest{
		{ResponseSize: 64, Payload: &testpb.Payload{Body: make([]byte, 64)}},
		{ResponseSize: 0},
		{ResponseSize: -1},
		{ResponseStatus: &testpb.EchoStatus{Code: int32(codes.ResourceExhausted), Message: "slow down"}},
	}
	var results [2][]string
	for i, bs := range benchServers {
		client := startBenchServer(t, func(s *grpc.Server) { bs.register(t, s) })
		for _, req := range reqs {
			var header, trailer metadata.MD
			ctx := metadata.AppendToOutgoingContext(testContext(t), initialMetadataKey, "i", trailingMetadataKey, "t")
			resp, err := client.UnaryCall(ctx, req, grpc.Header(&header), grpc.Trailer(&trailer))
			results[i] = append(results[i], prototext.Format(resp)+"|"+status.Convert(err).String()+
				"|"+header.Get(initialMetadataKey)[0]+"|"+trailer.Get(trailingMetadataKey)[0])
		}
	}
	for j := range reqs {
		if results[0][j] != results[1][j] {
			t.Errorf("request %d: compiled %q, dynamic %q", j, results[0][j], results[1][j])
		}
	}
}

// BenchmarkUnaryCall measures UnaryCall round trips (64-byte request and
// response payloads) against each server, one call at a time and with
// parallel callers.
//
//	go test -run '^$' -bench BenchmarkUnaryCall -benchmem -count 6 ./internal/dynamic
func BenchmarkUnaryCall(b *testing.B) {
	req := &testpb.SimpleRequest{
		ResponseType: testpb.PayloadType_COMPRESSABLE,
		ResponseSize: 64,
		Payload:      &testpb.Payload{Body: make([]byte, 64)},
	}
	for _, mode := range []string{"serial", "parallel"} {
		for _, bs := range benchServers {
			b.Run(mode+"/"+bs.name, func(b *testing.B) {
				client := startBenchServer(b, func(s *grpc.Server) { bs.register(b, s) })
				ctx := context.Background()
				if _, err := client.UnaryCall(ctx, req); err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				b.ResetTimer()
				if mode == "serial" {
					for b.Loop() {
						if _, err := client.UnaryCall(ctx, req); err != nil {
							b.Fatal(err)
						}
					}
				} else {
					b.SetParallelism(8)
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							if _, err := client.UnaryCall(ctx, req); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
			})
		}
	}
}

// BenchmarkUnaryCallInterleaved alternates batches of calls between the two
// servers inside one benchmark, so that load from elsewhere on the machine
// hits both alike, and reports the dynamic server's rate as a fraction of the
// compiled one's ("dynamic/compiled"). One op is one call to each server.
// "serial" makes one call at a time; "concurrent-8" keeps 8 calls in flight.
//
//	go test -run '^$' -bench BenchmarkUnaryCallInterleaved -count 6 ./internal/dynamic
func BenchmarkUnaryCallInterleaved(b *testing.B) {
	req := &testpb.SimpleRequest{
		ResponseType: testpb.PayloadType_COMPRESSABLE,
		ResponseSize: 64,
		Payload:      &testpb.Payload{Body: make([]byte, 64)},
	}
	for _, inFlight := range []int{1, 8} {
		name := "serial"
		if inFlight > 1 {
			name = fmt.Sprintf("concurrent-%d", inFlight)
		}
		b.Run(name, func(b *testing.B) {
			clients := make([]testgrpc.TestServiceClient, len(benchServers))
			for i, bs := range benchServers {
				clients[i] = startBenchServer(b, func(s *grpc.Server) { bs.register(b, s) })
			}
			ctx := context.Background()
			const batch = 64
			runBatch := func(client testgrpc.TestServiceClient) {
				var wg sync.WaitGroup
				for range inFlight {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for range batch / inFlight {
							if _, err := client.UnaryCall(ctx, req); err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
			}
			var elapsed [2]time.Duration
			calls := 0
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if calls%batch == 0 {
					// Alternate which server goes first in each batch.
					for k := range 2 {
						i := (calls/batch + k) % 2
						start := time.Now()
						runBatch(clients[i])
						elapsed[i] += time.Since(start)
					}
				}
				calls++
			}
			done := float64((calls + batch - 1) / batch * batch)
			compiledRate := done / elapsed[0].Seconds()
			dynamicRate := done / elapsed[1].Seconds()
			b.ReportMetric(compiledRate, "compiled-calls/s")
			b.ReportMetric(dynamicRate, "dynamic-calls/s")
			b.ReportMetric(dynamicRate/compiledRate, "dynamic/compiled")
		})
	}
}
