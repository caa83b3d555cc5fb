package observe

import (
	"cmp"
	"slices"
)

// sortBy sorts s by the key of each element.
func sortBy[E any, K cmp.Ordered](s []E, key func(E) K) {
	slices.SortFunc(s, func(a, b E) int { return cmp.Compare(key(a), key(b)) })
}
