// Package host is the client side of a bcctl connection: it dials a server
// with the backchannel handshake (or plainly) and hosts a dynamic gRPC server
// on the connection's backchannel, so the server's reverse calls are
// answered by any dynamic.Responder — a script engine, or a person in the
// TUI.
//
// Dial connects eagerly and waits for the connection to be ready, so what
// goes wrong is reported at once and by name: a refused connection, a TLS
// handshake that failed, a server that does not speak the backchannel
// protocol (ErrNotMultiplexing), a connect timeout. The backchannel server
// is created when the connection is made but serves nothing until Host
// gives it a schema and a Responder (reverse calls that arrive earlier wait
// for it): the schema of the hosted services may itself come from the
// connection, by reflection.
package host
