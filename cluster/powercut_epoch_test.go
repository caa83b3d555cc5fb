package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/courierbus/courier/bridge"
	"github.com/courierbus/courier/bridge/client"
	"github.com/courierbus/courier/bus"
	"github.com/courierbus/courier/internal/lazyfs"
)

// With NATS's default sync (an fsync every two minutes), a power cut of
// every server loses what they acknowledged since the last sync; Courier
// must then not give those sequence numbers out again under the same
// epoch. Three nats-server processes on file systems that keep only what
// was fsync'd, the stream with one replica; 10 messages are published and
// the servers stopped cleanly and started again (so that the stream itself
// is on disk, as in a cluster that has run for a while); 50 more are
// published and acknowledged on bus A and handed to a subscriber on bus C;
// then the power of the three servers and of buses A and B is cut at once
// (bus C, on a machine that kept its power, stays up). After the restart:
//
//   - the stream holds fewer messages than were acknowledged (the premise:
//     the default setting lost acknowledged writes);
//   - a client holding the position of the last message it was given,
//     (epoch, 60), gets bus.ErrNotCovered (recovered:false) on the
//     restarted bus A, before and after new publishes, and on bus C after
//     them; a bridge client subscribing after it on bus A before the new
//     publishes gets a resync (recovered:false), then the new messages;
//   - before the new publishes bus C, which applied (epoch, 60) itself,
//     may resume a subscription there; it then never gives it a position
//     it had (whether it gives it the new epoch's messages at all is
//     logged, not asserted: docs/cluster.md states that limit);
//   - 20 new publishes on bus A are given positions of a new epoch (or
//     numbers past 60), so the subscriber on bus C, which drops repeats by
//     (epoch, seq), is given every one of them, and no position is given
//     to two payloads.
func TestPowerCutDefaultSyncNewEpoch(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three nats-server processes and cuts their power")
	}
	// One replica: with three, the stream's replicas come back uneven from
	// such a cut and it can stay without a leader for minutes ("catchup
	// aborted, no leader for stream"), which NATS, not Courier, must solve.
	r := newPowerRig(t, lazyfs.RuleExt4, 1) // NATS's default sync
	const topic, synced, before, after = "power.epoch", 10, 60, 20
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	publish := func(b *bus.Bus, from, n int) []ack {
		t.Helper()
		var acks []ack
		for k := from; k < from+n; k++ {
			payload := fmt.Sprintf("%q", fmt.Sprintf("m%d", k))
			var seq uint64
			var err error
			// Publishes fail while the stream has no leader: try again,
			// with a publisher id so that a stored retry is not doubled.
			for try := 0; ; try++ {
				pctx, pcancel := context.WithTimeout(ctx, 3*time.Second)
				seq, err = b.PublishRaw(pctx, topic, []byte(payload), bus.PublisherID(fmt.Sprintf("m%d", k)))
				pcancel()
				if err == nil || ctx.Err() != nil {
					break
				}
			}
			if err != nil {
				t.Fatalf("publish %s: %v", payload, err)
			}
			acks = append(acks, ack{topic: topic, seq: seq, payload: payload})
		}
		return acks
	}
	publish(r.bus(0), 0, synced)
	if err := r.cleanRestart(ctx); err != nil {
		t.Fatal(err)
	}
	old := publish(r.bus(0), synced, before-synced)
	pos, err := r.bus(0).Position(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if pos.Seq != before {
		t.Fatalf("after %d publishes the topic is at %v", before, pos)
	}
	survivor := 2
	eventually(t, "bus C given the first messages", func() bool {
		r.seen.mu.Lock()
		defer r.seen.mu.Unlock()
		_, ok := r.seen.at[posKey{topic, pos.Epoch, before}]
		return ok
	})

	// The power cut: every server, and buses A and B.
	for _, f := range r.fs {
		f.Cut()
	}
	for i := range r.nats.Len() {
		r.nats.Kill(i)
	}
	r.dropNode(0, true)
	r.dropNode(1, true)
	for i, f := range r.fs {
		if err := f.Restart(); err != nil {
			t.Fatal(err)
		}
		if err := r.nats.StartServer(ctx, i); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.nats.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	// A stream may stay without a leader for minutes after uneven cuts;
	// bound the wait.
	lctx, lcancel := context.WithTimeout(ctx, 2*time.Minute)
	err = r.streamLeader(lctx)
	lcancel()
	if err != nil {
		t.Fatalf("after the cut: %v", err)
	}
	t.Logf("stream leader %v after the servers were ready", time.Since(at).Round(time.Millisecond))
	short, err := r.streamHolds(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the stream holds %d of the %d acknowledged messages of %s", short, before, topic)
	if short >= before {
		t.Fatalf("the stream holds %d messages of %s after the cut, %d were acknowledged: no write was lost, so this run shows nothing", short, topic, before)
	}
	r.startNodes()

	notCovered := func(what string, i int) {
		t.Helper()
		sub, err := r.bus(i).Subscribe(topic, func(context.Context, bus.Message[any]) error { return nil }, bus.StartAfter(pos))
		if err == nil {
			sub.Unsubscribe()
			t.Fatalf("%s: subscribing after %v on bus %c: no error, want bus.ErrNotCovered (recovered:false)", what, pos, 'A'+i)
		}
		if !errors.Is(err, bus.ErrNotCovered) {
			t.Fatalf("%s: subscribing after %v on bus %c: %v, want bus.ErrNotCovered", what, pos, 'A'+i, err)
		}
	}
	notCovered("before new publishes", 0)
	// The same over the bridge: a client on bus A subscribing after its
	// old position is told the history does not cover it (a resync, the
	// Go client's form of recovered:false).
	bc := bridgeClient(t, r.bus(0), topic, pos)
	// Bus C applied everything up to (epoch, 60) before the cut, so a
	// client resuming there may be served from its memory; what it is
	// given next must then come under a new epoch (or past 60).
	var resumed []posKey
	var resumedMu sync.Mutex
	sub, err := r.bus(survivor).Subscribe(topic, func(_ context.Context, m bus.Message[any]) error {
		resumedMu.Lock()
		resumed = append(resumed, posKey{topic, m.Position().Epoch, m.Seq()})
		resumedMu.Unlock()
		return nil
	}, bus.StartAfter(pos))
	switch {
	case errors.Is(err, bus.ErrNotCovered):
	case err != nil:
		t.Fatalf("before new publishes: subscribing after %v on bus C: %v", pos, err)
	default:
		defer sub.Unsubscribe()
	}

	fresh := publish(r.bus(0), before, after)
	now, err := r.bus(0).Position(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("before the cut %v; after it and %d publishes %v", pos, after, now)
	if now.Epoch == pos.Epoch {
		for _, a := range fresh {
			if a.seq <= before {
				t.Errorf("%s given seq %d again under epoch %d", a.payload, a.seq, pos.Epoch)
			}
		}
	}
	// Bus C's subscriber, de-duplicating by (epoch, seq), is given every
	// new message, and no position twice.
	r.mu.Lock()
	subC := r.subs[survivor]
	r.mu.Unlock()
	givenAll := func() bool {
		for _, a := range fresh {
			if !subC.has(a.payload) {
				return false
			}
		}
		return true
	}
	for deadline := time.Now().Add(30 * time.Second); !givenAll(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			last, _ := r.streamLast(ctx)
			r.mu.Lock()
			st := r.nodes[survivor].node.Stats()
			r.mu.Unlock()
			t.Fatalf("bus C, which stayed up through the cut, not given the new messages in 30 s: its feed is at stream seq %d, the stream ends at %d (%+v)", st.FeedSeq, last, st)
		}
	}
	notCovered("after new publishes", 0)
	notCovered("after new publishes", survivor)
	bc.check(t, pos, fresh)
	if sub != nil {
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			resumedMu.Lock()
			n := len(resumed)
			resumedMu.Unlock()
			if n >= after {
				break
			}
			if time.Now().After(deadline) {
				// A limit docs/cluster.md states ("so may a subscription
				// that was reading older history ... when the epoch
				// changed"): logged, not failed, until it is lifted.
				t.Logf("LIMIT: the subscription resumed after %v on bus C before the new publishes was given %d of the %d new messages in 10 s",
					pos, n, after)
				break
			}
		}
		resumedMu.Lock()
		for _, k := range resumed {
			if k.epoch == pos.Epoch && k.seq <= pos.Seq {
				t.Errorf("the subscription resumed after %v on bus C was given (%d, %d) again", pos, k.epoch, k.seq)
			}
		}
		resumedMu.Unlock()
	}
	r.seen.mu.Lock()
	defer r.seen.mu.Unlock()
	if len(r.seen.conflicts) > 0 || r.seen.dups > 0 {
		t.Fatalf("positions given to two payloads: %v; payloads given twice: %d", r.seen.conflicts, r.seen.dups)
	}
	t.Logf("%d acknowledged since the clean restart, %d lost at the cut; epoch %d → %d", len(old), before-short, pos.Epoch, now.Epoch)
}

// epochClient is a bridge client subscribed after a position of the old
// epoch.
type epochClient struct {
	mu      sync.Mutex
	resyncs int
	got     []posKey
	data    map[string]bool
}

// bridgeClient serves b through a bridge and subscribes a client to topic
// after pos; both end with the test.
func bridgeClient(t *testing.T, b *bus.Bus, topic string, pos bus.Position) *epochClient {
	t.Helper()
	br, err := bridge.New(b, bridge.Expose("power.>", bridge.Subscribe))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/bus/", br)
	srv := httptest.NewServer(mux)
	ec := &epochClient{data: map[string]bool{}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := client.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/bus/", client.OnEvent(func(e client.Event) {
		if e.Type == client.Resync {
			ec.mu.Lock()
			ec.resyncs++
			ec.mu.Unlock()
		}
	}))
	if err != nil {
		br.Close()
		srv.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cl.Close()
		srv.CloseClientConnections()
		br.Close()
		srv.Close()
	})
	if _, err := cl.Subscribe(ctx, topic, func(_ context.Context, m *client.Message) error {
		ec.mu.Lock()
		ec.got = append(ec.got, posKey{m.Topic, m.Epoch, m.Seq})
		ec.data[string(m.Data)] = true
		ec.mu.Unlock()
		return nil
	}, client.StartAfter(pos.Epoch, pos.Seq)); err != nil {
		t.Fatalf("bridge client: subscribing after %v: %v", pos, err)
	}
	return ec
}

// check waits until the client was told it was not recovered and was
// given every fresh message, none at a position of the old epoch up to pos.
func (ec *epochClient) check(t *testing.T, pos bus.Position, fresh []ack) {
	t.Helper()
	done := func() bool {
		ec.mu.Lock()
		defer ec.mu.Unlock()
		if ec.resyncs == 0 {
			return false
		}
		for _, a := range fresh {
			if !ec.data[a.payload] {
				return false
			}
		}
		return true
	}
	for deadline := time.Now().Add(30 * time.Second); !done(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			ec.mu.Lock()
			defer ec.mu.Unlock()
			t.Fatalf("bridge client subscribed after %v: %d resyncs (want one: recovered:false), given %d of the %d new messages in 30 s",
				pos, ec.resyncs, len(ec.data), len(fresh))
		}
	}
	ec.mu.Lock()
	defer ec.mu.Unlock()
	for _, k := range ec.got {
		if k.epoch == pos.Epoch && k.seq <= pos.Seq {
			t.Errorf("bridge client subscribed after %v was given (%d, %d) again", pos, k.epoch, k.seq)
		}
	}
}
