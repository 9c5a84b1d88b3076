// Package admin is the admin API of `bcctl serve` and `bcctl proxy`: the
// gRPC service bcctl.admin.v1.Admin, defined in
// proto/bcctl/admin/v1/admin.proto.
//
// The Go code for the service is generated into package adminpb
// (protoc-gen-go and protoc-gen-go-grpc, run by `go generate` without
// protoc; a test fails when it is stale). NewServer implements
// adminpb.AdminServer on a Backend (a *serve.Server, or bcctl proxy's
// serve.Hub with its schema and script) and serves reflection and health
// beside it, so grpcurl and bcctl call can use the API too; Client wraps
// adminpb.AdminClient for `bcctl peers`, explaining an unreachable or
// wrong address.
//
// The admin listener is separate from serve's main port and accepts only
// loopback addresses and unix sockets (CheckAddress): reverse calls into
// peers can be triggered only from the machine serve runs on, and never
// through the port the peers use.
package admin
