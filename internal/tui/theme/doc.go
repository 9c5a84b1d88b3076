// Package theme holds what bcctl's screens share: a lipgloss renderer that
// honours NO_COLOR, the colors and base styles every component's
// DefaultStyles builds on, and the bordered, titled pane they are drawn in.
//
// Colors are the 16 ANSI colors, so they follow the terminal's own palette
// on light and dark backgrounds alike and nothing has to query the
// terminal. With NO_COLOR set (https://no-color.org) the renderer uses
// termenv's Ascii profile: no color and no attributes, and every state a
// color shows is also shown by a word or a marker.
package theme
