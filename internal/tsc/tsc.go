// Package tsc runs the TypeScript compiler for the tests that type-check
// front-ends against Courier's declarations. The compiler is the npm
// package typescript, pinned by this directory's package-lock.json and
// installed with "npm ci" here. A test that calls [Check] skips when node
// or the compiler is missing, unless COURIER_REQUIRE_TSC=1 (as in CI),
// which makes it a failure.
package tsc

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Required reports whether TypeScript checks must run (COURIER_REQUIRE_TSC=1).
func Required() bool { return os.Getenv("COURIER_REQUIRE_TSC") == "1" }

// Dir returns this package's directory, where npm ci installs the compiler.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

// compiler returns node and the compiler's script, skipping t (or failing
// it when checks are required) when either is missing.
func compiler(t testing.TB) (node, script string) {
	t.Helper()
	skip := func(why string) {
		t.Helper()
		if Required() {
			t.Fatalf("%s (and COURIER_REQUIRE_TSC=1)", why)
		}
		t.Skipf("%s; skipping the TypeScript check", why)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		skip("no node found: install Node.js")
	}
	script = filepath.Join(Dir(), "node_modules", "typescript", "bin", "tsc")
	if _, err := os.Stat(script); err != nil {
		skip("no TypeScript compiler: run npm ci in " + Dir())
	}
	return node, script
}

// Flags are the compiler options of every check: strict, no output, ES
// modules resolved as a bundler does (so './client.js' finds
// './client.d.ts'), and JavaScript files checked where they ask for it
// with // @ts-check.
var Flags = []string{"--noEmit", "--strict", "--target", "es2022", "--module", "es2022",
	"--moduleResolution", "bundler", "--lib", "es2022,dom", "--allowJs",
	"--pretty", "false"}

// Check runs the compiler on files (relative to dir) with [Flags] and
// returns whether it passed and what it printed. It skips t when node or
// the compiler is missing, unless [Required].
func Check(t testing.TB, dir string, files ...string) (ok bool, output string) {
	t.Helper()
	node, script := compiler(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, append(append([]string{script}, Flags...), files...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		if _, exit := err.(*exec.ExitError); !exit || ctx.Err() != nil {
			t.Fatalf("tsc: %v\n%s", err, out)
		}
		return false, strings.TrimSpace(string(out))
	}
	return true, strings.TrimSpace(string(out))
}
