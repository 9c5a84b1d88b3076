// Package tui is bcctl's terminal interface, built with bubbletea, bubbles
// and lipgloss. It has two programs:
//
//   - The answer program (bcctl connect --tui, bcctl call --tui): a queue
//     of the reverse calls the upstream makes into the backchannel, the
//     selected call's request and metadata, a reply editor pre-filled with
//     a template of the response type, an error form, a key to let the
//     loaded script answer, and a second screen that sends forward calls.
//     Calls reach it through an answer.Responder hosted on the backchannel.
//   - The serve program (bcctl serve --tui): the live registry of
//     connected peers as a table, the journal with a filter, and a screen
//     that makes a reverse call into the selected peer's backchannel. It
//     reads the serve engine through PeerSource, JournalSource and
//     ReverseCaller.
//
// Every component (queue, msgview, editor, errform, picker, history,
// forward, helpbar, registry, journalview) has the shape of a bubbles
// component: New, an Update that returns its concrete type, View,
// SetSize, a KeyMap and a Styles struct. A key does only what the screen
// shows: each mode shows its own keys in the help bar, and q asks before
// it ends calls in flight. Nothing does I/O outside a tea.Cmd, so the screen never
// waits on the network. Colors come from a lipgloss renderer that honours
// NO_COLOR (theme.NewRenderer).
package tui
