package persist_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The crash and restart tests run this binary as their child process.
	if os.Getenv(crashChildEnv) != "" {
		crashChild() // never returns: the parent kills it
	}
	if os.Getenv(powerChildEnv) != "" {
		powerChild() // never returns: the parent kills it
	}
	if os.Getenv(restartChildEnv) != "" {
		restartChild()
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}
