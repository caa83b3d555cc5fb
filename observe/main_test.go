package observe_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/courierbus/courier/bridge"
	"github.com/courierbus/courier/bus"
	"github.com/courierbus/courier/observe"
	"github.com/courierbus/courier/persist"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// stack is what a host runs: a bus (on a persist store when asked), a
// bridge at /bus/, and an HTTP server on 127.0.0.1 with whatever else a
// test mounts on mux.
type stack struct {
	t       testing.TB
	store   *persist.Store
	commits *observe.Commits
	bus     *bus.Bus
	br      *bridge.Bridge
	mux     *http.ServeMux
	srv     *httptest.Server
	closers []func()
}

type stackConfig struct {
	persist    bool
	bridgeOpts []bridge.Option
}

func newStack(t testing.TB, cfg stackConfig) *stack {
	t.Helper()
	s := &stack{t: t, mux: http.NewServeMux()}
	var busOpts []bus.Option
	if cfg.persist {
		s.commits = observe.NewCommits()
		st, err := persist.Open(t.TempDir(), persist.OnCommit(s.commits.Observe))
		if err != nil {
			t.Fatal(err)
		}
		s.store = st
		busOpts = append(busOpts, bus.WithStore(st))
	}
	b, err := bus.New(busOpts...)
	if err != nil {
		s.close()
		t.Fatal(err)
	}
	s.bus = b
	br, err := bridge.New(b, cfg.bridgeOpts...)
	if err != nil {
		s.close()
		t.Fatal(err)
	}
	s.br = br
	s.mux.Handle("/bus/", br)
	s.srv = httptest.NewUnstartedServer(s.mux)
	s.srv.Config.ReadHeaderTimeout = 5 * time.Second
	s.srv.Config.IdleTimeout = 30 * time.Second
	s.srv.Start()
	t.Cleanup(s.close)
	return s
}

// onClose runs f when the stack closes, before the bridge, the bus and the
// store (in reverse order of the calls).
func (s *stack) onClose(f func()) { s.closers = append(s.closers, f) }

func (s *stack) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
	if s.br != nil {
		s.br.Close()
	}
	if s.srv != nil {
		s.srv.Close()
	}
	if s.bus != nil {
		s.bus.Close()
	}
	if s.store != nil {
		s.store.Close()
	}
}

// wsURL returns the bridge's WebSocket URL.
func (s *stack) wsURL() string { return "ws" + strings.TrimPrefix(s.srv.URL, "http") + "/bus/" }

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// eventually waits up to 10 seconds for cond.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func topicStats(b *bus.Bus, name string) bus.TopicStats {
	for _, t := range b.Stats().Topics {
		if t.Name == name {
			return t
		}
	}
	return bus.TopicStats{}
}
