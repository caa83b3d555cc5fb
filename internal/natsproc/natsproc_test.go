package natsproc_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/courierbus/courier/internal/natsproc"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// A stream with three replicas written before a kill -9 of one server, and
// before a kill -9 of all three, is there after each restart, when the
// servers fsync on every write.
func TestKillAndRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dir := t.TempDir()
	stores := []string{filepath.Join(dir, "s0"), filepath.Join(dir, "s1"), filepath.Join(dir, "s2")}
	c, err := natsproc.Start(ctx, dir, stores, natsproc.SyncAlways())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	t.Cleanup(func() {
		if t.Failed() {
			for i := range c.Len() {
				b, _ := os.ReadFile(c.Log(i))
				lines := strings.Split(string(b), "\n")
				t.Logf("%s, the end of its log:\n%s", c.Name(i), strings.Join(lines[max(0, len(lines)-40):], "\n"))
			}
		}
	})
	nc, err := nats.Connect(c.URLs(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t"}, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	want := uint64(0)
	publish := func(n int) {
		t.Helper()
		for range n {
			// A publish may fail while a leader is elected: try again.
			for {
				pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
				ack, err := js.Publish(pctx, "t", []byte("x"))
				pcancel()
				if err == nil {
					want = ack.Sequence
					break
				}
				if ctx.Err() != nil {
					t.Fatalf("publish: %v", err)
				}
			}
		}
	}
	check := func(what string) {
		t.Helper()
		for {
			// A request that reaches no leader gets no answer: bound each.
			sctx, scancel := context.WithTimeout(ctx, 2*time.Second)
			s, err := js.Stream(sctx, "T")
			scancel()
			if err == nil && s.CachedInfo().State.LastSeq == want {
				return
			}
			if ctx.Err() != nil {
				if err == nil {
					err = fmt.Errorf("last sequence %d, leader %q", s.CachedInfo().State.LastSeq, s.CachedInfo().Cluster.Leader)
				}
				t.Fatalf("%s: stream not back with %d messages: %v", what, want, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	publish(20)
	c.Kill(1)
	if c.Running(1) {
		t.Fatal("server 1 running after Kill")
	}
	publish(20)
	if err := c.StartServer(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	check("one server killed")
	publish(20)
	for i := range c.Len() {
		c.Kill(i)
	}
	for i := range c.Len() {
		if err := c.StartServer(ctx, i); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	check("every server killed")
	if want != 60 {
		t.Fatalf("last sequence %d, want 60", want)
	}
}
