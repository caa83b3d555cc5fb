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
	"slices"
	"strings"
	"sync"
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

// Tab is a page in a browser context of its own (its own cookies and
// storage, as another person's browser would have). Its steps fail the test
// with what the page logged as errors.
type Tab struct {
	T    *testing.T
	Name string
	Ctx  context.Context
	// Wait bounds each step. Describe is a JavaScript expression whose
	// JSON a failed wait shows, to tell what the page was doing.
	Wait     time.Duration
	Describe string

	mu      sync.Mutex
	console []string // exceptions and console errors
}

// NewTab opens url in a new tab of its own browser context, and records
// what the page logs as errors. It is closed when the test ends.
func NewTab(t *testing.T, browser context.Context, name, url string, wait time.Duration, describe string) *Tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := Open(ctx, cancel); err != nil {
		t.Fatalf("open a tab for %s: %v", name, err)
	}
	p := &Tab{T: t, Name: name, Ctx: ctx, Wait: wait, Describe: describe}
	// Subscribe before navigating: what the page logs while it loads (a
	// resource its Content-Security-Policy refuses, a failed fetch) counts.
	messages := chromedp.Console(ctx)
	p.Do(chromedp.Navigate(url))
	go func() { // ends with the tab's context
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == chromedp.ConsoleError {
				p.mu.Lock()
				p.console = append(p.console, m.String())
				p.mu.Unlock()
			}
		}
	}()
	return p
}

// Do runs actions on the page within the step timeout.
func (p *Tab) Do(actions ...chromedp.Action[chromedp.Void]) {
	p.T.Helper()
	ctx, cancel := context.WithTimeout(p.Ctx, p.Wait)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.T.Fatalf("%s's page: %v%s", p.Name, err, p.ConsoleText())
	}
}

// Eval evaluates a JavaScript expression on the page (awaiting a promise)
// into a T.
func Eval[T any](p *Tab, expr string) T {
	p.T.Helper()
	ctx, cancel := context.WithTimeout(p.Ctx, p.Wait)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		p.T.Fatalf("%s's page: evaluate %s: %v%s", p.Name, expr, err, p.ConsoleText())
	}
	return v
}

// WaitJS waits up to d until expr is truthy on the page, polling every
// poll, and returns how long it took.
func (p *Tab) WaitJS(d, poll time.Duration, expr, what string) time.Duration {
	p.T.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(p.Ctx, d+2*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(poll), chromedp.WithPollingTimeout(d)))
	if err != nil {
		p.T.Fatalf("%s's page: waiting %v for %s: %v\npage: %s%s", p.Name, d, what, err, p.describe(), p.ConsoleText())
	}
	return time.Since(start)
}

func (p *Tab) describe() string {
	if p.Describe == "" {
		return "?"
	}
	ctx, cancel := context.WithTimeout(p.Ctx, 2*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string]("JSON.stringify("+p.Describe+")"))
	if err != nil {
		return err.Error()
	}
	return s
}

// Console returns what the page logged as errors so far.
func (p *Tab) Console() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.console)
}

// ConsoleText is Console for a failure message: empty, or a list.
func (p *Tab) ConsoleText() string {
	c := p.Console()
	if len(c) == 0 {
		return ""
	}
	return "\nconsole:\n  " + strings.Join(c, "\n  ")
}
