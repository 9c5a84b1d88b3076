package words

import (
	"sort"
	"strings"
)

// Closest returns up to n names from candidates that are near name (by
// edit distance, ignoring case, or sharing a prefix/suffix), nearest first.
func Closest(name string, candidates []string, n int) []string {
	type scored struct {
		name string
		dist int
	}
	lname := strings.ToLower(name)
	var list []scored
	for _, c := range candidates {
		lc := strings.ToLower(c)
		d := EditDistance(lname, lc)
		limit := len(name)/2 + 1
		if limit < 3 {
			limit = 3
		}
		if d <= limit || (len(lname) >= 3 && (strings.Contains(lc, lname) || strings.Contains(lname, lc))) {
			list = append(list, scored{c, d})
		}
	}
	sort.SliceStable(list, func(i, j int) bool { return list[i].dist < list[j].dist })
	var out []string
	for i := 0; i < len(list) && len(out) < n; i++ {
		out = append(out, list[i].name)
	}
	return out
}

// DidYouMean formats a suggestion for name among candidates
// (`; did you mean "a" or "b"?`), or lists the candidates when none is near
// and there are few of them (`; known: a, b`), or returns "".
func DidYouMean(name string, candidates []string) string {
	if near := Closest(name, candidates, 3); len(near) > 0 {
		return "; did you mean " + QuoteJoin(near, " or ") + "?"
	}
	if len(candidates) > 0 && len(candidates) <= 12 {
		return "; known: " + strings.Join(candidates, ", ")
	}
	return ""
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
