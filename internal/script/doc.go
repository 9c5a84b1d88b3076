// Package script is bcctl's YAML rule language: the scripts with which
// `bcctl serve` answers forward calls and calls back into its peers, and
// with which `bcctl call/connect --answer` answers reverse calls on the
// backchannel. docs/script.md is the reference of the language.
//
// A script is loaded and validated against schemas (Parse, LoadFile):
// every method, field, matcher, status code and template is checked, and
// every problem is reported with file:line:col in one *LoadError.
//
// An Engine runs a loaded script. It is a dynamic.Responder: Respond
// answers a call with the first matching rule (`times` uses are claimed
// atomically), or with UNIMPLEMENTED naming the closest rule and why it
// missed. `call` steps reach the other side through a Caller. Every
// finished call, answered or made, goes to a calls.Observer as a calls.Event
// (direction, peer, method, metadata, messages, status, timing, rule,
// cause) and is counted for the script's expectations, which Check
// evaluates into a Report; Report.Err wraps ErrExpectationsFailed.
//
// For interactive answering, Match tells which rule would answer a call
// without answering it, and RespondReceived lets the script answer a call
// whose first messages were already read.
package script
