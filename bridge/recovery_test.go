package bridge_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/courierbus/courier/bridge"
	"github.com/courierbus/courier/bridge/client"
	"github.com/courierbus/courier/bus"
	"github.com/courierbus/courier/internal/tcpproxy"
)

// TestRecoveryUnderCuts cuts the client's connection at random at least
// 200 times while 10,000 messages flow; the handler must see each message
// exactly once, in order.
func TestRecoveryUnderCuts(t *testing.T) {
	const total, minCuts = 10000, 200
	e := newEnv(t, []bus.Option{bus.History(total+1, 0)}, bridge.Expose("load.>", bridge.Subscribe, bridge.Publish))
	p := tcpproxy.New(t, strings.TrimPrefix(e.srv.URL, "http://"))
	var connects, resumes atomic.Int64
	c, err := client.Dial(ctxT(t), p.URL(e.url),
		client.ReconnectBackoff(2*time.Millisecond, 20*time.Millisecond),
		client.OnEvent(func(ev client.Event) {
			if ev.Type == client.Connected {
				connects.Add(1)
				if ev.Resumed {
					resumes.Add(1)
				}
				for sub, ok := range ev.Recovered {
					if !ok {
						t.Errorf("subscription %s not recovered", sub)
					}
				}
			}
			if ev.Type == client.Stopped || ev.Type == client.ServerError {
				t.Errorf("event %v: %v", ev.Type, ev.Err)
			}
			if ev.Type == client.Resync {
				t.Errorf("resync: %+v", ev)
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	var mu sync.Mutex
	var seqs []uint64
	all := make(chan struct{})
	_, err = c.Subscribe(ctxT(t), "load.x", func(_ context.Context, m *client.Message) error {
		mu.Lock()
		seqs = append(seqs, m.Seq)
		n := len(seqs)
		mu.Unlock()
		if n == total {
			close(all)
		}
		return nil
	}, client.MaxUnacked(64))
	if err != nil {
		t.Fatal(err)
	}

	// Publish in bursts while a cutter cuts at random.
	var wg sync.WaitGroup
	published := make(chan struct{})
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer close(published)
		for i := 1; i <= total; i++ {
			if _, err := e.bus.PublishRaw(context.Background(), "load.x", []byte(fmt.Sprint(i))); err != nil {
				t.Errorf("publish %d: %v", i, err)
				return
			}
			if i%25 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	go func() {
		defer wg.Done()
		deadline := time.After(50 * time.Second)
		for {
			select {
			case <-all:
				if p.Cuts() >= minCuts {
					return
				}
			case <-deadline:
				return
			default:
			}
			time.Sleep(time.Duration(1+rand.IntN(15)) * time.Millisecond)
			p.Cut()
		}
	}()
	wg.Wait()
	select {
	case <-all:
	case <-time.After(20 * time.Second):
	}
	mu.Lock()
	defer mu.Unlock()
	if p.Cuts() < minCuts {
		t.Errorf("only %d cuts", p.Cuts())
	}
	if len(seqs) != total {
		t.Fatalf("handled %d messages, want %d", len(seqs), total)
	}
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("message %d has seq %d: not exactly once in order", i, s)
		}
	}
	t.Logf("%d cuts, %d connects, %d resumed, server stats %+v", p.Cuts(), connects.Load(), resumes.Load(), e.br.Stats())
}

// TestCatchUpUnderLoad: clients with small windows fall behind a fast
// publisher and catch up from history; each sees every message once, in
// order.
func TestCatchUpUnderLoad(t *testing.T) {
	const clients, total = 20, 1000
	e := newEnv(t, []bus.Option{bus.History(total+1, 0)}, bridge.Expose("load.>", bridge.Subscribe))
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		c := e.dial()
		var next uint64 = 1
		wg.Add(1)
		done := false
		_, err := c.Subscribe(ctxT(t), "load.y", func(_ context.Context, m *client.Message) error {
			if done {
				return nil
			}
			if m.Seq != next {
				errs <- fmt.Errorf("client %d: seq %d, want %d", i, m.Seq, next)
				done = true
				wg.Done()
				return nil
			}
			next++
			if next > total {
				done = true
				wg.Done()
			}
			return nil
		}, client.MaxUnacked(1+i%5))
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= total; i++ {
		if _, err := e.bus.PublishRaw(context.Background(), "load.y", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(45 * time.Second):
		t.Fatal("clients did not get every message")
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
