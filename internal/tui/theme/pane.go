package theme

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
)

// Pane draws body in a rounded box of exactly width × height cells with
// title set into the top border ("╭─ Calls ───╮"). The focused pane's
// border uses FocusedBorder and its title is marked with "●", so focus is
// visible without color. Lines of body that are too long are cut; missing
// lines are blank.
func (t Theme) Pane(title, body string, width, height int, focused bool) string {
	if width < 4 || height < 2 {
		return ""
	}
	border := t.Border
	if focused {
		border = t.FocusedBorder
	}
	inner := width - 2
	b := lipgloss.RoundedBorder()

	var out strings.Builder
	// Top: ╭─ ● title ───╮
	head := ""
	if title != "" {
		mark := ""
		if focused {
			mark = "● "
		}
		head = " " + mark + t.Title.Render(ansi.Truncate(title, max(inner-4-len(mark), 0), "…")) + " "
	}
	fill := inner - 1 - lipgloss.Width(head)
	if fill < 0 {
		head, fill = "", inner-1
	}
	out.WriteString(border.Render(b.TopLeft+b.Top) + head + border.Render(strings.Repeat(b.Top, fill)+b.TopRight))
	out.WriteByte('\n')

	lines := strings.Split(body, "\n")
	for i := 0; i < height-2; i++ {
		line := ""
		if i < len(lines) {
			line = lines[i]
		}
		out.WriteString(border.Render(b.Left))
		out.WriteString(Fit(line, inner))
		out.WriteString(border.Render(b.Right))
		out.WriteByte('\n')
	}
	out.WriteString(border.Render(b.BottomLeft + strings.Repeat(b.Bottom, inner) + b.BottomRight))
	return out.String()
}

// Fit cuts s to width cells (with "…") or pads it with spaces to width.
func Fit(s string, width int) string {
	if width <= 0 {
		return ""
	}
	w := lipgloss.Width(s)
	if w > width {
		return ansi.Truncate(s, width, "…")
	}
	return s + strings.Repeat(" ", width-w)
}

// FitLines applies Fit to every line of s and returns exactly height lines.
func FitLines(s string, width, height int) string {
	lines := strings.Split(s, "\n")
	out := make([]string, height)
	for i := range out {
		if i < len(lines) {
			out[i] = Fit(lines[i], width)
		} else {
			out[i] = strings.Repeat(" ", max(width, 0))
		}
	}
	return strings.Join(out, "\n")
}

// TitleBar lays out a program's top line: left (the program and what it
// is connected to) and, flush right, a tab per screen, numbered from 1,
// with the active one in brackets. When both do not fit, left is cut: the
// tabs say which screen is shown and which key shows the other.
func (t Theme) TitleBar(left string, width, active int, screens ...string) string {
	var right strings.Builder
	for i, name := range screens {
		if i > 0 {
			right.WriteString(" ")
		}
		if i == active {
			right.WriteString(t.ActiveTab.Render(fmt.Sprintf("[%d %s]", i+1, name)))
		} else {
			right.WriteString(t.Tab.Render(fmt.Sprintf(" %d %s ", i+1, name)))
		}
	}
	rw := lipgloss.Width(right.String())
	if rw+1 > width {
		return Fit(left, width)
	}
	gap := width - lipgloss.Width(left) - rw
	if gap < 1 {
		return Fit(left, width-rw-1) + " " + right.String()
	}
	return left + strings.Repeat(" ", gap) + right.String()
}
