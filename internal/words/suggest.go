package words

import (
	"strings"
	"unicode/utf8"
)

// Closest returns the names among candidates that name was most likely
// meant to be, at most n of them, in the order of candidates: those at the
// smallest edit distance (ignoring case), provided it is small for name's
// length (at most a third of it, and at least 2), or those that contain
// name or are contained in it (names of 3 or more runes), which count as
// near as their distance says. A name with nothing near gets none: a
// suggestion is worth making only when it is likely right.
func Closest(name string, candidates []string, n int) []string {
	lname := strings.ToLower(name)
	limit := max(2, utf8.RuneCountInString(name)/3)
	best := -1
	var near []string
	for _, c := range candidates {
		lc := strings.ToLower(c)
		d := EditDistance(lname, lc)
		contains := utf8.RuneCountInString(lname) >= 3 && (strings.Contains(lc, lname) || strings.Contains(lname, lc))
		if d > limit && !contains {
			continue
		}
		switch {
		case best < 0 || d < best:
			best, near = d, []string{c}
		case d == best:
			near = append(near, c)
		}
	}
	if len(near) > n {
		near = near[:n]
	}
	return near
}

// DidYouMean formats a suggestion for name among candidates
// (`; did you mean "a" or "b"?`), or lists the candidates when none is near
// and there are few of them (`; known: a, b`), or returns "".
func DidYouMean(name string, candidates []string) string {
	if s := Suggest(Closest(name, candidates, 3)); s != "" {
		return s
	}
	if len(candidates) > 0 && len(candidates) <= 12 {
		return "; known: " + strings.Join(candidates, ", ")
	}
	return ""
}

// Suggest formats names found by Closest as `; did you mean "a" or "b"?`,
// or returns "" when there are none.
func Suggest(near []string) string {
	if len(near) == 0 {
		return ""
	}
	return "; did you mean " + QuoteJoin(near, " or ") + "?"
}

// QuoteJoin double-quotes each name and joins them with sep.
func QuoteJoin(names []string, sep string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = `"` + n + `"`
	}
	return strings.Join(q, sep)
}

// EditDistance is the Levenshtein distance between a and b, counted in
// runes.
func EditDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
