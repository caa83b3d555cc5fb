package bustest_test

import (
	"testing"

	"github.com/courierbus/courier/internal/depcheck"
)

// Third parties run the suites in their own modules: the package must not
// bring in anything but the standard library and bus.
func TestImportsOnlyBus(t *testing.T) {
	for _, p := range depcheck.NonStandard(t, ".") {
		switch p {
		case "github.com/courierbus/courier/bus", "github.com/courierbus/courier/bus/bustest":
		default:
			t.Errorf("bustest depends on %s; want the standard library and bus only", p)
		}
	}
}
