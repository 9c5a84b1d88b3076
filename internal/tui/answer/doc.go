// Package answer lets a person answer the reverse calls that arrive on a
// backchannel.
//
// A Responder is a dynamic.Responder: the backchannel host hands it every
// reverse call, and it turns each one into a Call that waits for a decision
// while the bubbletea program shows it. The Responder and the program talk
// only through tea.Msg and tea.Cmd values:
//
//   - Next returns a tea.Cmd that waits for the next event (a call arrived,
//     a request message arrived, a response was sent, the call ended). The
//     program issues it again after each event it handles.
//   - A Call's Reply, End, Fail and Delegate return tea.Cmds that hand a
//     decision to the call's goroutine and report the outcome as a
//     ResultMsg. A reply is checked against the method's output type before
//     anything is sent: a reply that does not fit comes back as a ResultMsg
//     whose error names the JSON field path, and the call stays pending.
//
// When the connection that brings the calls goes away, ConnectionLost ends
// every pending call Lost, with the cause, and Options.Gone lets a call
// whose context ends with the connection count as lost rather than
// cancelled by its caller.
//
// Streaming calls stay open until ended: request messages are reported as
// they arrive, and a person may send several responses before ending the
// call with OK (End) or an error (Fail). Delegate lets the loaded script's
// rules answer a call (script.Engine.RespondReceived), the messages already
// received included.
package answer
