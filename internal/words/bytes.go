package words

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Bytes formats a byte count the way bcctl prints sizes: "14B", "3.0KiB",
// "1.2MiB", "2.0GiB".
func Bytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1fGiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1fKiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%dB", n)
}

// byteUnits are the units ParseBytes accepts, longest first.
var byteUnits = []struct {
	suffix string
	mult   int64
}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"B", 1}}

// ParseBytes parses a size as people write it in flags and scripts:
// "4096", "4096B", "64KiB", "8MiB", "1GiB" (a space before the unit is
// fine). Units are binary; decimal ones (KB, MB) are refused rather than
// guessed.
func ParseBytes(s string) (int64, error) {
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range byteUnits {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v < 0 || v > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is not a size such as 4096, 64KiB or 8MiB", s)
	}
	return v * mult, nil
}
