package observe_test

import (
	"strings"
	"testing"

	"github.com/courierbus/courier/internal/depcheck"
	"github.com/courierbus/courier/observe"
	"github.com/courierbus/courier/persist"
)

// Metrics of a bus kept in memory must not bring in persist, Badger or
// what Badger brings (OpenTelemetry): observe reads a store through its
// Store interface, and persist's *Store satisfies it.
func TestImportsNoPersist(t *testing.T) {
	for _, p := range depcheck.NonStandard(t, ".") {
		for _, banned := range []string{"github.com/courierbus/courier/persist", "github.com/dgraph-io/", "go.opentelemetry.io/"} {
			if p == banned || strings.HasSuffix(banned, "/") && strings.HasPrefix(p, banned) {
				t.Errorf("observe depends on %s; want no persist, Badger or OpenTelemetry", p)
			}
		}
	}
}

var _ observe.Store = (*persist.Store)(nil)
