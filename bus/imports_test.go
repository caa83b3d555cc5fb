package bus_test

import (
	"testing"

	"github.com/courierbus/courier/internal/depcheck"
)

// The package doc says bus imports only the standard library: persist,
// bridge, cluster and observe depend on it, never the reverse.
func TestImportsOnlyStandardLibrary(t *testing.T) {
	for _, p := range depcheck.NonStandard(t, ".") {
		if p != "github.com/courierbus/courier/bus" {
			t.Errorf("bus depends on %s; want the standard library only", p)
		}
	}
}
