package words

import "fmt"

// Plural returns one when n is 1, else many: Plural(n, "call was",
// "calls were").
func Plural[N Integer](n N, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// Count formats n with noun, adding an "s" unless n is 1: "1 rule",
// "2 rules", "0 calls". Nouns whose plural is not noun+"s" use Plural.
func Count[N Integer](n N, noun string) string {
	return fmt.Sprint(n) + " " + Plural(n, noun, noun+"s")
}

// Integer is any integer type a count may have.
type Integer interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64 | ~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64 | ~uintptr
}
