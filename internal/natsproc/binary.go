package natsproc

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
)

// serverModule is the module whose main package is nats-server.
const serverModule = "github.com/nats-io/nats-server/v2"

// Version returns the nats-server version of the module the process runs
// in: from the binary's build information, or (test binaries have none)
// from `go list -m` in the working directory.
func Version(ctx context.Context) (string, error) {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == serverModule {
				if d.Replace != nil {
					d = d.Replace
				}
				return d.Version, nil
			}
		}
	}
	// go test puts its own Go's bin first in PATH.
	out, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Version}}", serverModule).Output()
	if err != nil {
		return "", fmt.Errorf("natsproc: go list -m %s (run inside a module that requires it): %w", serverModule, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// Binary returns the path of a nats-server executable of [Version], building
// it with the go command from the module cache the first time (a few
// seconds) and keeping it under os.UserCacheDir (or os.TempDir when there is
// none) for later runs. It must run inside a module that requires
// nats-server at that version, as tests do. Concurrent callers, in this
// process or others, each get a whole file.
func Binary(ctx context.Context) (string, error) {
	v, err := Version(ctx)
	if err != nil {
		return "", err
	}
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	dir := filepath.Join(base, "courier-natsproc")
	exe := filepath.Join(dir, "nats-server-"+v+"-"+runtime.GOOS+"-"+runtime.GOARCH)
	if runtime.GOOS == "windows" {
		exe += ".exe"
	}
	if _, err := os.Stat(exe); err == nil {
		return exe, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("natsproc: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "build-*")
	if err != nil {
		return "", fmt.Errorf("natsproc: %w", err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	cmd := exec.CommandContext(ctx, "go", "build", "-o", tmp.Name(), serverModule)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("natsproc: go build %s: %w\n%s", serverModule, err, out)
	}
	// The module the go command resolved must be the one this binary was
	// built with: check before keeping the file under that version's name.
	out, err := exec.CommandContext(ctx, tmp.Name(), "--version").Output()
	if err != nil {
		return "", fmt.Errorf("natsproc: %s --version: %w", tmp.Name(), err)
	}
	if got := strings.TrimSpace(string(out)); !strings.HasSuffix(got, " "+v) {
		return "", fmt.Errorf("natsproc: built %q, want nats-server %s: run inside a module that requires it", got, v)
	}
	if err := os.Rename(tmp.Name(), exe); err != nil {
		return "", fmt.Errorf("natsproc: %w", err)
	}
	return exe, nil
}
