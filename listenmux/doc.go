// Package listenmux lets one gRPC listener serve several connection
// protocols, routed by the first bytes a client sends.
//
// A Mux wraps ordinary gRPC transport credentials (TLS or insecure). After the
// wrapped credentials' own handshake it reads exactly MagicLen bytes from the
// connection. When they equal the magic of a registered Handshaker, the
// connection is handed to that handshaker (the backchannel package registers
// one for "backchannel"). Any other bytes are replayed in front of the
// connection and it is served as plain gRPC, so clients that know nothing of
// the multiplexing keep working: a plain HTTP/2 client's first bytes are the
// connection preface "PRI * HTTP/2.0", which matches no magic.
//
// # Slow and broken clients
//
// Reading the magic blocks until MagicLen bytes have arrived. grpc-go sets a
// deadline on the raw connection before the server handshake and clears it
// afterwards (grpc.ConnectionTimeout, 120 seconds by default), so a client
// that sends fewer bytes and stalls holds one goroutine for at most that
// long. Servers exposed to untrusted clients should lower it, for example
// grpc.NewServer(grpc.Creds(mux), grpc.ConnectionTimeout(10*time.Second)).
//
// The API mirrors Gitaly's internal/listenmux so that code written against it
// ports over; unlike Gitaly's, Clone keeps the registered handshakers.
package listenmux
