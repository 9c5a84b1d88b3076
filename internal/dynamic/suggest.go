package dynamic

import (
	"strings"

	"github.com/bcctl/bcctl/internal/words"
)

// SuggestMethods finds what a method name that is not among methods (each
// "pkg.Svc/Method") was most likely meant to be. When name's service has
// methods, service lists them and near holds the closest of them (by their
// method part); otherwise service is nil and near holds the closest of all
// methods. near is empty when nothing is close (words.Closest decides).
func SuggestMethods(name string, methods []string) (near, service []string) {
	svc, meth, ok := strings.Cut(name, "/")
	if ok {
		var short []string
		for _, m := range methods {
			if s, rest, _ := strings.Cut(m, "/"); s == svc {
				service = append(service, m)
				short = append(short, rest)
			}
		}
		if len(service) > 0 {
			near = words.Closest(meth, short, 3)
			for i := range near {
				near[i] = svc + "/" + near[i]
			}
			return near, service
		}
	}
	return words.Closest(name, methods, 3), nil
}
