package tui

import "github.com/charmbracelet/bubbles/key"

// AnswerKeyMap are the keys of the answer program. Keys with ctrl work
// everywhere; single letters only when no text field has the focus.
type AnswerKeyMap struct {
	// Everywhere.
	Quit, Help, Screen, NextPane, PrevPane key.Binding
	// The call screen.
	Send, Error, Script, End, Leave key.Binding
	// The call screen, when not typing.
	Edit, SendLetter, ErrorLetter, ScriptLetter, EndLetter, QuitLetter, HelpLetter, Calls, Forward key.Binding
	// Transport shows or hides the transport headers of a call.
	Transport key.Binding
}

// DefaultAnswerKeyMap returns the answer program's default keys.
func DefaultAnswerKeyMap() AnswerKeyMap {
	return AnswerKeyMap{
		Quit:     key.NewBinding(key.WithKeys("ctrl+c"), key.WithHelp("ctrl+c", "quit")),
		Help:     key.NewBinding(key.WithKeys("f1"), key.WithHelp("f1", "help")),
		Screen:   key.NewBinding(key.WithKeys("f2"), key.WithHelp("f2", "calls/forward")),
		NextPane: key.NewBinding(key.WithKeys("tab"), key.WithHelp("tab", "next pane")),
		PrevPane: key.NewBinding(key.WithKeys("shift+tab"), key.WithHelp("shift+tab", "previous pane")),

		Send:   key.NewBinding(key.WithKeys("ctrl+s"), key.WithHelp("ctrl+s", "send reply")),
		Error:  key.NewBinding(key.WithKeys("ctrl+x"), key.WithHelp("ctrl+x", "answer with error")),
		Script: key.NewBinding(key.WithKeys("ctrl+r"), key.WithHelp("ctrl+r", "let the script answer")),
		End:    key.NewBinding(key.WithKeys("ctrl+o"), key.WithHelp("ctrl+o", "end stream OK")),
		Leave:  key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "stop editing")),

		Edit:         key.NewBinding(key.WithKeys("enter", "i"), key.WithHelp("enter", "edit reply")),
		SendLetter:   key.NewBinding(key.WithKeys("s"), key.WithHelp("s", "send reply")),
		ErrorLetter:  key.NewBinding(key.WithKeys("e", "x"), key.WithHelp("e", "error")),
		ScriptLetter: key.NewBinding(key.WithKeys("a", "r"), key.WithHelp("a", "script answers")),
		EndLetter:    key.NewBinding(key.WithKeys("o"), key.WithHelp("o", "end OK")),
		QuitLetter:   key.NewBinding(key.WithKeys("q"), key.WithHelp("q", "quit")),
		HelpLetter:   key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "help")),
		Calls:        key.NewBinding(key.WithKeys("1"), key.WithHelp("1", "calls")),
		Forward:      key.NewBinding(key.WithKeys("2"), key.WithHelp("2", "forward")),
		Transport:    key.NewBinding(key.WithKeys("t"), key.WithHelp("t", "transport headers")),
	}
}

// helpAndQuit is the help screen's group of the keys that show help and
// quit: each letter with its function or ctrl key on one line.
func helpAndQuit(help, helpLetter, quit, quitLetter key.Binding) []key.Binding {
	both := func(letter, other key.Binding, desc string) key.Binding {
		return key.NewBinding(key.WithKeys(append(letter.Keys(), other.Keys()...)...),
			key.WithHelp(letter.Help().Key+" "+other.Help().Key, desc))
	}
	return []key.Binding{
		both(helpLetter, help, "help"),
		both(quitLetter, quit, "quit ("+quitLetter.Help().Key+" asks about calls in flight)"),
	}
}

// ServeKeyMap are the keys of the serve program. Keys with ctrl or a
// function key work everywhere; single letters only when no text field has
// the focus.
type ServeKeyMap struct {
	Quit, Help, Screen, NextPane, PrevPane       key.Binding
	Call, QuitLetter, HelpLetter, Peers, Reverse key.Binding
}

// DefaultServeKeyMap returns the serve program's default keys.
func DefaultServeKeyMap() ServeKeyMap {
	return ServeKeyMap{
		Quit:       key.NewBinding(key.WithKeys("ctrl+c"), key.WithHelp("ctrl+c", "quit")),
		Help:       key.NewBinding(key.WithKeys("f1"), key.WithHelp("f1", "help")),
		Screen:     key.NewBinding(key.WithKeys("f2"), key.WithHelp("f2", "peers/reverse call")),
		NextPane:   key.NewBinding(key.WithKeys("tab"), key.WithHelp("tab", "next pane")),
		PrevPane:   key.NewBinding(key.WithKeys("shift+tab"), key.WithHelp("shift+tab", "previous pane")),
		Call:       key.NewBinding(key.WithKeys("enter", "c"), key.WithHelp("enter/c", "call this peer")),
		QuitLetter: key.NewBinding(key.WithKeys("q"), key.WithHelp("q", "quit")),
		HelpLetter: key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "help")),
		Peers:      key.NewBinding(key.WithKeys("1"), key.WithHelp("1", "peers")),
		Reverse:    key.NewBinding(key.WithKeys("2"), key.WithHelp("2", "reverse call")),
	}
}
