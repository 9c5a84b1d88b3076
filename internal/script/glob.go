package script

import (
	"fmt"
	"regexp"
	"strings"
)

// isGlob reports whether s uses glob syntax.
func isGlob(s string) bool { return strings.ContainsAny(s, "*?[") }

// compileGlob turns a shell-style glob into an anchored regexp: `*` is any
// run of characters, `?` one character, `[abc]`/`[a-z]`/`[!abc]` a class,
// `\x` a literal x. In method globs `*` and `?` do not cross the "/" between
// service and method, so "gitaly.*/*" means every method of every gitaly
// service.
func compileGlob(pattern string, method bool) (*regexp.Regexp, error) {
	any, one := ".*", "."
	if method {
		any, one = "[^/]*", "[^/]"
	}
	var b strings.Builder
	b.WriteString(`^(?s:`)
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		switch c {
		case '*':
			b.WriteString(any)
		case '?':
			b.WriteString(one)
		case '\\':
			if i+1 == len(pattern) {
				return nil, fmt.Errorf("glob %q ends with a lone backslash", pattern)
			}
			i++
			b.WriteString(regexp.QuoteMeta(pattern[i : i+1]))
		case '[':
			end := strings.IndexByte(pattern[i+1:], ']')
			if end < 0 {
				return nil, fmt.Errorf("glob %q has an unclosed [", pattern)
			}
			class := pattern[i+1 : i+1+end]
			if class == "" {
				return nil, fmt.Errorf("glob %q has an empty []", pattern)
			}
			if class[0] == '!' {
				class = "^" + class[1:]
			}
			b.WriteString("[" + strings.ReplaceAll(class, `\`, `\\`) + "]")
			i += end + 1
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString(`)$`)
	re, err := regexp.Compile(b.String())
	if err != nil {
		return nil, fmt.Errorf("glob %q: %w", pattern, err)
	}
	return re, nil
}
