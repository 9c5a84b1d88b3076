// Package journal records the calls bcctl makes and answers as JSON lines:
// one Entry per finished call, forward or reverse, written as soon as the
// call ends. `bcctl call --journal`, `bcctl connect --journal` and `bcctl
// serve --journal` write it; verify commands and tests read it back.
//
// The line format is documented in docs/cli.md ("The journal") and is
// stable: field names are snake_case and empty fields are left out. A
// Writer turns finished-call events (calls.Event, from the script engine
// and from the CLI's own forward calls) into entries, numbers them, and
// writes each one with a single write, so no entry is lost when a peer
// disconnects or the process stops. A Reader reads them back and turns
// them into calls.Records, so a script's expectations can be checked
// against a journal.
package journal
