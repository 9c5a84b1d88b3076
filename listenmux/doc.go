// Package listenmux lets one gRPC listener serve several connection
// protocols, routed by the first bytes a client sends.
//
// A Mux wraps ordinary gRPC transport credentials (TLS or insecure). After the
// wrapped credentials' own handshake it reads exactly MagicLen bytes from the
// connection. When they equal the magic of a registered Handshaker, the
// connection is handed to that handshaker (the backchannel package registers
// one for "backchannel"). Any other bytes go to the Mux's Fallback with the
// bytes replayed in front of the connection. The default Fallback,
// ServeAsGRPC, serves it as plain gRPC, so clients that know nothing of the
// multiplexing keep working: a plain HTTP/2 client's first bytes are the
// connection preface "PRI * HTTP/2.0", which matches no magic.
//
// # Taking a connection out of gRPC
//
// A Handshaker (or Fallback) may keep a connection for a protocol that is
// not gRPC at all, as the client side of Gitaly's sidechannel does with the
// streams its server opens. It returns credentials.ErrConnDispatched; the
// Mux returns that sentinel unwrapped and leaves the connection open, and
// grpc-go, which compares the error by identity, forgets the connection
// without closing it. Any other error closes the connection.
//
// # Refusing unknown protocols
//
// SetFallback replaces ServeAsGRPC, for example with a function that refuses
// every connection that does not begin with the HTTP/2 preface and says
// what it began with instead. The Fallback sees the bytes the Mux already
// read, so nothing reads the connection twice.
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
// ports over; unlike Gitaly's, Clone keeps the registered handshakers, and
// the Fallback is a seam Gitaly's does not have (its behaviour is the
// default).
package listenmux
