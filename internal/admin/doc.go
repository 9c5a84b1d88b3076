// Package admin is the admin API of `bcctl serve`: a gRPC service,
// bcctl.admin.v1.Admin, defined in proto/bcctl/admin/v1/admin.proto and
// embedded in the program.
//
// bcctl generates no code. The server side answers the service with
// internal/dynamic's server from the embedded schema (and serves reflection
// for it, so grpcurl can list and call it); the client side (bcctl peers)
// calls it with dynamic messages. Both sides convert between the dynamic
// messages and the plain Go types of this package through protojson.
//
// The admin listener is separate from serve's main port and accepts only
// loopback addresses and unix sockets (CheckAddress): reverse calls into
// peers can be triggered only from the machine serve runs on, and never
// through the port the peers use.
package admin
