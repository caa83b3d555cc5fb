package persist_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/courierbus/courier/bus"
	"github.com/courierbus/courier/persist"
)

// crashChildEnv, when set to a directory, makes the test binary run
// crashChild instead of the tests (see TestMain).
const crashChildEnv = "COURIER_CRASH_CHILD"

var (
	crashTopics   = []string{"crash.a", "crash.b", "crash.c"}
	crashConsumer = "durable"
)

const crashAppenders = 16

func payloadHash(b []byte) uint64 {
	h := fnv.New64a()
	h.Write(b)
	return h.Sum64()
}

// crashChild is the process TestCrashRecovery kills. It opens the store in
// synced mode and, until killed, appends from many goroutines and runs a
// durable consumer, printing to stdout one line per event only after the
// store acknowledged it:
//
//	R                         the store is open
//	P                         an Append is about to be called
//	A <topic> <seq> <hash>    Append returned seq for a payload with hash
//	S <floor> <delivered>     SaveConsumer returned for this state
func crashChild() {
	fail := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, format+"\n", args...)
		os.Exit(3)
	}
	s, err := persist.Open(os.Getenv(crashChildEnv))
	if err != nil {
		fail("open: %v", err)
	}
	emit := func(line string) {
		if _, err := os.Stdout.WriteString(line); err != nil {
			os.Exit(4)
		}
	}
	emit("R\n")
	ctx := context.Background()
	pid := os.Getpid()
	for g := range crashAppenders {
		go func() {
			pad := bytes.Repeat([]byte{'x'}, 200)
			for n := 0; ; n++ {
				topic := crashTopics[(g+n)%len(crashTopics)]
				data := fmt.Appendf(nil, "%d/%d/%d/", pid, g, n)
				data = append(data, pad[:rand.IntN(len(pad))]...)
				emit("P\n")
				seq, err := s.Append(ctx, topic, bus.Record{Time: time.Now(), Data: data})
				if err != nil {
					fail("append: %v", err)
				}
				emit(fmt.Sprintf("A %s %d %x\n", topic, seq, payloadHash(data)))
			}
		}()
	}
	go func() {
		c, _, err := s.Consumer(ctx, crashTopics[0], crashConsumer)
		if err != nil {
			fail("consumer: %v", err)
		}
		acked := map[uint64]bool{}
		for _, seq := range c.Acked {
			acked[seq] = true
		}
		var pending []uint64
		for seq := c.AckFloor + 1; seq <= c.Delivered; seq++ {
			if !acked[seq] {
				pending = append(pending, seq)
			}
		}
		floor, delivered := c.AckFloor, c.Delivered
		for {
			recs, err := s.Read(ctx, crashTopics[0], delivered+1, 32, nil)
			if err != nil {
				fail("read: %v", err)
			}
			for _, r := range recs {
				delivered = r.Seq
				pending = append(pending, r.Seq)
			}
			// Acknowledge some of what is outstanding, out of order.
			pending = slices.DeleteFunc(pending, func(seq uint64) bool {
				if rand.IntN(10) < 6 {
					acked[seq] = true
					return true
				}
				return false
			})
			for acked[floor+1] {
				delete(acked, floor+1)
				floor++
			}
			list := make([]uint64, 0, len(acked))
			for seq := range acked {
				list = append(list, seq)
			}
			slices.Sort(list)
			st := bus.ConsumerState{AckFloor: floor, Delivered: delivered, Acked: list}
			if err := s.SaveConsumer(ctx, crashTopics[0], crashConsumer, st); err != nil {
				fail("save consumer: %v", err)
			}
			emit(fmt.Sprintf("S %d %d\n", floor, delivered))
			if len(recs) == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	time.Sleep(time.Minute) // the parent kills us long before
	fail("not killed")
}

// childOutput collects the child's stdout and reports when it is ready.
type childOutput struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	ready chan struct{}
	once  sync.Once
}

func (o *childOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf.Write(p)
	if bytes.HasPrefix(o.buf.Bytes(), []byte("R\n")) {
		o.once.Do(func() { close(o.ready) })
	}
	return len(p), nil
}

type ackKey struct {
	topic string
	seq   uint64
}

// TestCrashRecovery kills a child process that appends in synced mode
// with SIGKILL at random moments, again and again on the same directory,
// and checks after each kill that every acknowledged record is there with
// its sequence number and payload, that no topic has a gap, and that the
// durable consumer's saved position is consistent and covered.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("kills child processes for a while; skipped with -short")
	}
	const minCycles, maxCycles, budget = 20, 40, 40 * time.Second
	dir := t.TempDir()
	acked := map[ackKey]uint64{}
	var published, acknowledged, saves int
	var lastFloor, lastDelivered uint64
	start := time.Now()
	cycle := 0
	for ; cycle < minCycles || (cycle < maxCycles && time.Since(start) < budget); cycle++ {
		out := &childOutput{ready: make(chan struct{})}
		var stderr bytes.Buffer
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
		cmd.Stdout, cmd.Stderr = out, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		early := cycle > 0 && cycle%4 == 3 // sometimes kill during Open and recovery
		if early {
			time.Sleep(time.Duration(rand.IntN(150)) * time.Millisecond)
		} else {
			select {
			case <-out.ready:
			case <-time.After(30 * time.Second):
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("cycle %d: child not ready after 30s; stderr:\n%s", cycle, stderr.String())
			}
			time.Sleep(time.Duration(10+rand.IntN(290)) * time.Millisecond)
		}
		cmd.Process.Kill()
		err := cmd.Wait()
		if ee := (*exec.ExitError)(nil); !errors.As(err, &ee) || ee.ExitCode() != -1 {
			t.Fatalf("cycle %d: child ended with %v, not by the kill; stderr:\n%s", cycle, err, stderr.String())
		}

		for line := range strings.Lines(out.buf.String()) {
			if !strings.HasSuffix(line, "\n") {
				continue // cut by the kill
			}
			f := strings.Fields(line)
			switch f[0] {
			case "P":
				published++
			case "A":
				seq, _ := strconv.ParseUint(f[2], 10, 64)
				h, _ := strconv.ParseUint(f[3], 16, 64)
				k := ackKey{f[1], seq}
				if prev, ok := acked[k]; ok && prev != h {
					t.Fatalf("cycle %d: %s seq %d acknowledged twice, for different payloads", cycle, k.topic, seq)
				}
				acked[k] = h
				acknowledged++
			case "S":
				lastFloor, _ = strconv.ParseUint(f[1], 10, 64)
				lastDelivered, _ = strconv.ParseUint(f[2], 10, 64)
				saves++
			}
		}
		verifyCrashDir(t, cycle, dir, acked, saves > 0, lastFloor, lastDelivered)
	}
	t.Logf("%d cycles in %v: published %d, acknowledged %d (distinct %d), consumer saves %d (last floor %d, delivered %d), lost 0",
		cycle, time.Since(start).Round(time.Millisecond), published, acknowledged, len(acked), saves, lastFloor, lastDelivered)
}

// verifyCrashDir opens the store left by a killed child and checks it.
func verifyCrashDir(t *testing.T, cycle int, dir string, acked map[ackKey]uint64, saved bool, floor, delivered uint64) {
	t.Helper()
	ctx := context.Background()
	s, err := persist.Open(dir)
	if err != nil {
		t.Fatalf("cycle %d: reopen: %v", cycle, err)
	}
	defer func() {
		if err := s.Close(); err != nil {
			t.Errorf("cycle %d: close: %v", cycle, err)
		}
	}()
	hashes := map[ackKey]uint64{}
	lasts := map[string]uint64{}
	for _, topic := range crashTopics {
		ts, err := s.Topic(ctx, topic)
		if err != nil {
			t.Fatalf("cycle %d: Topic(%s): %v", cycle, topic, err)
		}
		lasts[topic] = ts.Last
		if ts.Last > 0 && ts.First != 1 {
			t.Fatalf("cycle %d: %s First = %d, want 1 (no retention)", cycle, topic, ts.First)
		}
		var buf []bus.Record
		for from := uint64(1); from <= ts.Last; {
			buf, err = s.Read(ctx, topic, from, 4096, buf[:0])
			if err != nil {
				t.Fatalf("cycle %d: Read(%s, %d): %v", cycle, topic, from, err)
			}
			if len(buf) == 0 {
				t.Fatalf("cycle %d: %s: nothing at %d, Last %d", cycle, topic, from, ts.Last)
			}
			for _, r := range buf {
				if r.Seq != from {
					t.Fatalf("cycle %d: %s: got seq %d, want %d (gap)", cycle, topic, r.Seq, from)
				}
				hashes[ackKey{topic, r.Seq}] = payloadHash(r.Data)
				from++
			}
		}
	}
	lost := 0
	for k, h := range acked {
		got, ok := hashes[k]
		switch {
		case !ok:
			lost++
			t.Errorf("cycle %d: acknowledged %s seq %d is missing (Last %d)", cycle, k.topic, k.seq, lasts[k.topic])
		case got != h:
			lost++
			t.Errorf("cycle %d: %s seq %d holds another payload than the one acknowledged", cycle, k.topic, k.seq)
		}
	}
	if lost > 0 {
		t.Fatalf("cycle %d: lost %d acknowledged records", cycle, lost)
	}

	c, ok, err := s.Consumer(ctx, crashTopics[0], crashConsumer)
	switch {
	case err != nil:
		t.Fatalf("cycle %d: Consumer: %v", cycle, err)
	case !ok:
		if saved {
			t.Fatalf("cycle %d: consumer state missing after a save was acknowledged", cycle)
		}
		return
	}
	last := lasts[crashTopics[0]]
	if c.AckFloor > c.Delivered || c.Delivered > last {
		t.Fatalf("cycle %d: consumer %+v inconsistent with Last %d", cycle, c, last)
	}
	if c.AckFloor < floor || c.Delivered < delivered {
		t.Fatalf("cycle %d: consumer floor %d delivered %d behind acknowledged save (%d, %d)", cycle, c.AckFloor, c.Delivered, floor, delivered)
	}
	for i, seq := range c.Acked {
		if seq <= c.AckFloor || seq > c.Delivered || (i > 0 && seq <= c.Acked[i-1]) {
			t.Fatalf("cycle %d: consumer acked set %v not ascending within (%d, %d]", cycle, c.Acked, c.AckFloor, c.Delivered)
		}
	}
	// Everything the consumer has not acknowledged is still readable.
	recs, err := s.Read(ctx, crashTopics[0], c.AckFloor+1, int(last-c.AckFloor), nil)
	if err != nil {
		t.Fatalf("cycle %d: Read from the consumer's floor: %v", cycle, err)
	}
	got := map[uint64]bool{}
	for _, r := range recs {
		got[r.Seq] = true
	}
	for seq := c.AckFloor + 1; seq <= last; seq++ {
		if !got[seq] && !slices.Contains(c.Acked, seq) {
			t.Fatalf("cycle %d: unacknowledged seq %d not readable from the floor", cycle, seq)
		}
	}
}
