package bridge_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/courierbus/courier/bridge"
	"github.com/courierbus/courier/bridge/internal/wire"
	"github.com/courierbus/courier/bus"
)

// endpointWaiting binds endpoint name to a handler that tells entered it
// runs, then waits for release or for its context to end, and tells
// ended how it ended (nil when released).
func endpointWaiting(t *testing.T, b *bus.Bus, name string, release <-chan struct{}) (entered chan struct{}, ended chan error) {
	t.Helper()
	entered, ended = make(chan struct{}, 1), make(chan error, 1)
	ep, err := bus.NewEndpoint[int, int](b, name)
	if err != nil {
		t.Fatal(err)
	}
	h, err := ep.Handle(func(ctx context.Context, n int) (int, error) {
		entered <- struct{}{}
		select {
		case <-release:
			ended <- nil
			return n + 1, nil
		case <-ctx.Done():
			ended <- ctx.Err()
			return 0, ctx.Err()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Stop() })
	return entered, ended
}

// refusing waits until the bridge answers new connections with 503: it
// has begun to close.
func (e *env) refusing(t *testing.T) {
	t.Helper()
	waitUntil(t, func() bool { return dialStatus(t, e.url, nil) == http.StatusServiceUnavailable })
}

// returns waits for a call made on another goroutine; the bound only
// keeps a hanging call from hanging the test.
func returns(t *testing.T, what string, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not return", what)
		return nil
	}
}

// TestShutdownAnswersRequestsInProgress: Shutdown lets the client requests
// in progress finish and writes their replies before it closes the
// connection with 1001, and refuses new connections meanwhile.
func TestShutdownAnswersRequestsInProgress(t *testing.T) {
	e := newEnv(t, nil, bridge.Expose("rpc.>", bridge.Request))
	release := make(chan struct{})
	entered, ended := endpointWaiting(t, e.bus, "rpc.wait", release)
	r, _ := e.rawHello()
	r.send(`{"op":"request","id":"q","topic":"rpc.wait","data":41}`)
	<-entered

	done := make(chan error, 1)
	go func() { done <- e.br.Shutdown(context.Background()) }()
	e.refusing(t)
	close(release)
	if err := <-ended; err != nil {
		t.Fatalf("the handler's context ended during a graceful Shutdown: %v", err)
	}
	if f := r.answer("q"); f.Op != wire.OpReply || string(f.Data) != "42" {
		t.Fatalf("answer to the request in progress: got %+v, want reply 42", f)
	}
	if code := r.closed(); code != wire.CloseGoingAway {
		t.Fatalf("close code %d, want %d", code, wire.CloseGoingAway)
	}
	if err := returns(t, "Shutdown", done); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := e.br.Close(); err != nil {
		t.Fatalf("Close after Shutdown: %v", err)
	}
}

// TestShutdownPastItsContextForces: when Shutdown's context ends first,
// Shutdown returns the context's error and forces what is left (the
// request's handler sees its context end); a later Close returns, with
// every goroutine ended (goleak in TestMain), and so do further calls.
func TestShutdownPastItsContextForces(t *testing.T) {
	e := newEnv(t, nil, bridge.Expose("rpc.>", bridge.Request))
	entered, ended := endpointWaiting(t, e.bus, "rpc.stuck", nil)
	r, _ := e.rawHello()
	r.send(`{"op":"request","id":"q","topic":"rpc.stuck","data":1}`)
	<-entered

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.br.Shutdown(ctx) }()
	e.refusing(t)
	select {
	case err := <-ended:
		t.Fatalf("the handler ended before Shutdown's context did: %v", err)
	default:
	}
	cancel()
	if err := returns(t, "Shutdown", done); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown past its context: got %v, want %v", err, context.Canceled)
	}
	if err := <-ended; !errors.Is(err, context.Canceled) {
		t.Fatalf("the handler's context: got %v, want it cancelled", err)
	}

	closed := make(chan error, 1)
	go func() { closed <- e.br.Close() }()
	if err := returns(t, "Close after a Shutdown past its context", closed); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if code := r.closed(); code != wire.CloseGoingAway {
		t.Fatalf("close code %d, want %d", code, wire.CloseGoingAway)
	}
	if s := e.br.Stats(); s.Connections != 0 || s.Sessions != 0 {
		t.Fatalf("after Close: %d connections, %d sessions; want none", s.Connections, s.Sessions)
	}
	if err := e.br.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown after Close: %v", err)
	}
	if err := e.br.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// leaveFails is a broker whose members cannot leave their rooms: the
// cluster is unreachable.
type leaveFails struct{ bus.Store }

func (leaveFails) Attach(bus.Feed) error { return nil }

var errUnreachable = errors.New("cluster unreachable")

func (leaveFails) SharePresence(_ context.Context, _, _, _ string, joined bool) error {
	if !joined {
		return errUnreachable
	}
	return nil
}

// TestCloseReturnsWhatItMeets: Close returns the errors it meets ending
// sessions, once; later calls return nil.
func TestCloseReturnsWhatItMeets(t *testing.T) {
	e := newEnv(t, []bus.Option{bus.WithBroker(leaveFails{bus.NewMemoryStore()})},
		bridge.ExposeRooms("lobby", bridge.Join))
	r, _ := e.rawHello()
	r.send(`{"op":"join","id":"j","rooms":["lobby"]}`)
	if f := r.answer("j"); f.Op != wire.OpOK {
		t.Fatalf("join: %+v", f)
	}
	if err := e.br.Close(); !errors.Is(err, errUnreachable) {
		t.Fatalf("Close: got %v, want an error wrapping %v", err, errUnreachable)
	}
	if err := e.br.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
