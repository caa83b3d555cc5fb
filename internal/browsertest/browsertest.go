// Package browsertest starts headless Chromium for the browser tests of
// Courier's packages. A test that calls [Start] skips when no Chromium is
// installed, unless COURIER_REQUIRE_BROWSER=1 (as in CI), which makes a
// missing browser a failure. COURIER_CHROMIUM names the binary to use.
package browsertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Required reports whether browser tests must run (COURIER_REQUIRE_BROWSER=1).
func Required() bool { return os.Getenv("COURIER_REQUIRE_BROWSER") == "1" }

// Path returns the Chromium binary to use, or "" when there is none.
func Path() string {
	if p := os.Getenv("COURIER_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// skip skips the test, or fails it when browsers are required.
func skip(t *testing.T, format string, args ...any) {
	t.Helper()
	if Required() {
		t.Fatalf(format+" (and COURIER_REQUIRE_BROWSER=1)", args...)
	}
	t.Skipf(format+"; skipping the browser test", args...)
}

// Start starts headless Chromium with a window of width × height for one
// test and returns its chromedp context; the browser is stopped, and its
// profile removed, when the test ends. As root, Chromium runs without its
// sandbox; background networking, updates and sync are off, since the
// machine may have no network but 127.0.0.1.
func Start(t *testing.T, width, height int) context.Context {
	t.Helper()
	path := Path()
	if path == "" {
		skip(t, "no Chromium found: install it (apt-get install -y chromium) or set COURIER_CHROMIUM")
	}
	dir, err := os.MkdirTemp("", "courier-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // tests may run as root
		chromedp.Headless,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(dir),
		chromedp.WindowSize(width, height),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		chromedp.Flag("no-proxy-server", true),
	)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		for range 50 { // Chromium's helpers may still write in the profile for a moment
			if os.RemoveAll(dir) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	if err := Open(ctx, cancel); err != nil {
		skip(t, "Chromium %s did not start: %v", path, err)
	}
	return ctx
}

// Open runs the first action on a chromedp context: it starts the browser
// or opens the tab, whose life it ties to the context it gets. So it gets
// ctx itself, with no deadline, and the wait is bounded here instead (30
// seconds): a context with a deadline would close the tab when it ends.
func Open(ctx context.Context, cancel context.CancelFunc) error {
	done := make(chan error, 1)
	go func() { done <- chromedp.Do(ctx) }()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		cancel()
		<-done
		return fmt.Errorf("not started within 30s")
	}
}
