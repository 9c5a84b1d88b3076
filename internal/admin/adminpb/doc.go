// Package adminpb is the generated Go code of the admin API
// (bcctl.admin.v1.Admin, internal/admin/proto/bcctl/admin/v1/admin.proto):
// its messages (protoc-gen-go) and its gRPC client and server stubs
// (protoc-gen-go-grpc). Do not edit the .pb.go files: change the .proto
// and run
//
//	go generate ./internal/admin/adminpb
//
// which needs no protoc (internal/protogen). A test fails when the
// committed files are not what the .proto generates.
package adminpb

//go:generate go run ../../cmd/protogen -I ../proto -module github.com/bcctl/bcctl/internal/admin/adminpb -o . bcctl/admin/v1/admin.proto
