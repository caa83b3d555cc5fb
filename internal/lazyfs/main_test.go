//go:build linux

package lazyfs

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if op := os.Getenv(childEnv); op != "" {
		runChild(op)
		return
	}
	goleak.VerifyTestMain(m)
}
