// Package dynamic is bcctl's codegen-free gRPC core: it loads schemas at run
// time and sends, parses, prints and answers messages built from them.
//
// # Schemas
//
// A Source lists services, finds symbols and resolves types for Any:
//
//   - NewSourceFromProtoFiles compiles .proto files with protocompile (the
//     well-known types are built in); a file that does not compile gives a
//     *CompileError listing every problem as file:line:col.
//   - NewSourceFromProtosets, NewSourceFromProtosetBytes and
//     NewSourceFromFileDescriptorSet read compiled descriptor sets;
//     NewSourceFromFiles wraps descriptors a program already has.
//   - NewSourceFromReflection asks a server's reflection service (v1, with a
//     v1alpha fallback) over any grpc.ClientConnInterface, a backchannel
//     included; a server without one gives ErrReflectionNotSupported.
//   - NewCompositeSource asks several sources in order (reflection first,
//     files as the fallback, say).
//
// FindMethod resolves "pkg.Svc/Method" (or "pkg.Svc.Method",
// "/pkg.Svc/Method") and suggests close matches for unknown names. Describe
// prints a descriptor as proto source and TemplateJSON shows a message with
// every field present.
//
// # Client
//
// NewRequestParser reads requests as concatenated JSON values or as text
// format separated by 0x1E (grpcurl's conventions); JSON that does not fit
// names the request number and the field path (a *FieldError). Invoke and
// InvokeRPC call any method of any call kind over any
// grpc.ClientConnInterface and report headers, responses, status and
// trailers to an InvocationEventHandler (PrintingHandler prints them like
// grpcurl). NewFormatter renders responses as JSON or text; FormatStatus
// and StatusJSON render a status with its google.rpc details decoded.
//
// # Server
//
// RegisterServices serves schema services on a grpc.ServiceRegistrar with
// no generated code: every call goes to a Responder as a Call, whatever its
// kind. RegisterSource does that for a whole Source and adds reflection
// (RegisterReflection, v1 and v1alpha, listing only the loaded schema and the
// services really served) and health (RegisterHealth). A Responder that
// panics or misbehaves fails only its own call, with INTERNAL.
//
// The schema corpus used by the tests, the examples and the demo is package
// internal/corpus, which embeds the .proto files and a protoset compiled
// from them.
package dynamic
