// Package recording turns a session bcctl proxy watched into a script in
// bcctl's own language that replays it:
//
//   - `rules` answer the client's forward calls as the upstream did, with
//     `call` steps for the reverse calls the upstream made during each, and
//     an `expect` of the answer the client gave;
//   - `backchannel` rules answer the upstream's reverse calls as the
//     client did;
//   - `expect` entries count the calls of each method, each way.
//
// So `bcctl serve --script FILE` plays the upstream to a real client, and
// `bcctl call/connect --answer FILE` plays the client to a real upstream.
//
// The script is written to be read and diffed: rules keep the order in
// which their methods were first called, messages are written in the
// shape of their JSON form with the schema's field names (bytes as text
// where they are text), and a rule matches on request fields only where
// the recorded calls of one method got different answers: on the one
// field (or the fields) whose value tells them apart, or, when nothing in
// the request does, as a sequence of rules that each answer their share
// of calls (`times`).
package recording
