// Package corpus is bcctl's schema corpus: the .proto files that tests,
// examples and the demo use, and a protoset compiled from them.
//
// The corpus has two parts:
//
//   - package gitaly (gitaly/*.proto): a subset of Gitaly's real interface,
//     with Gitaly's service, method, message and field names, numbers,
//     types and enum values (a test checks them): OperationService
//     (UserCreateBranch, UserDeleteBranch: the operations Gitaly votes on
//     through Praefect), RefService (FindDefaultBranchName, FindAllBranches,
//     DeleteRefs), RefTransaction (VoteTransaction answers COMMIT, ABORT
//     or STOP), and the calls whose data goes through a sidechannel
//     (SmartHTTPService/PostUploadPackWithSidechannel,
//     SSHService/SSHUploadPackWithSidechannel). Requests and scripts written against it work unchanged
//     against a real Gitaly or Praefect.
//   - package acme (acme/*.proto): a user directory whose Users service has
//     every call kind (unary, server, client and bidi streaming), uses the
//     well-known types, enums, oneofs, maps, repeated and bytes fields,
//     imports gitaly.Repository from the other package, and documents errors
//     with google.rpc details (and its own acme.UserConflict detail).
//
// Other packages get the corpus without touching the file system: FS holds
// the .proto sources (paths relative to the corpus root, which is also the
// import path) and Protoset holds the compiled google.protobuf.FileDescriptorSet
// with source info and every import (well-known types included).
//
// corpus.protoset is generated with protocompile, no protoc needed:
//
//	go generate ./internal/corpus
//
// A test of this package fails when the committed protoset is stale.
package corpus

import "embed"

//go:generate go run ../cmd/protogen -I . -protoset corpus.protoset

// FS holds the corpus .proto files at their import paths (for example
// "gitaly/ref.proto").
//
//go:embed gitaly/*.proto acme/*.proto
var FS embed.FS

// Protoset is corpus.protoset: a serialized FileDescriptorSet of every file
// in ProtoFiles and their imports, with source info (comments).
//
//go:embed corpus.protoset
var Protoset []byte

// ProtoFiles lists the corpus files, relative to the corpus root.
var ProtoFiles = []string{
	"acme/errors.proto",
	"acme/user.proto",
	"acme/users.proto",
	"gitaly/operations.proto",
	"gitaly/ref.proto",
	"gitaly/shared.proto",
	"gitaly/smarthttp.proto",
	"gitaly/ssh.proto",
	"gitaly/transaction.proto",
}
