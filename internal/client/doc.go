// Package client is bcctl's client session: one connection to a server,
// with everything bcctl keeps around it.
//
// A Session dials the server (internal/host: the backchannel handshake
// unless Config.Dial says NoMux), resolves the forward schema (files,
// server reflection over that connection, or both), hosts services on the
// backchannel with the script engine that answers reverse calls (or
// another Responder, such as the TUI's), and numbers every call in a
// journal: forward calls the command makes (Invoke), reverse calls the
// script or a person answers, and calls the script makes. Each is written
// to the journal file, handed to the tap (printing, a JSON document) and
// counted for the script's expectations (Check).
//
// The commands that talk to servers (call, connect, list, describe) and
// the terminal UI they start use the same seam: Open, Forward, Invoke,
// WaitReverse, Check, Close; a Responder other than the script engine
// plugs in through Backchannel.Responder and reports what it answers with
// ResponderEnv.Report.
//
// Configuration is plain data (Config, Schema, Backchannel); the command
// line resolves its flags into it, and schema files are loaded by the
// functions it gives. Errors, and the hints the session sends the upstream
// in UNIMPLEMENTED answers, name bcctl's flags (--answer, --journal,
// --no-mux, --backchannel-proto): a person acts on them, whichever way the
// session was started.
package client
