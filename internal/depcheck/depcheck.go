// Package depcheck lets a test hold a package to the imports the design
// allows it (bus: the standard library only; observe: no persist), by
// asking the go command what the package depends on.
package depcheck

import (
	"os/exec"
	"strings"
	"testing"
)

// NonStandard returns the import path of every package outside the
// standard library that pkg depends on, directly or not, pkg itself
// included, as "go list -deps" reports them: pkg's test files are left
// out. pkg is an import path or a directory ("." is the test's own
// package). It fails the test if the go command cannot say.
func NonStandard(t testing.TB, pkg string) []string {
	t.Helper()
	goCmd, err := exec.LookPath("go") // go test puts its own go first in PATH
	if err != nil {
		t.Fatalf("depcheck: %v", err)
	}
	out, err := exec.Command(goCmd, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", pkg).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("depcheck: go list %s: %v\n%s", pkg, err, ee.Stderr)
		}
		t.Fatalf("depcheck: go list %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}
