package persist_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/courierbus/courier/bus"
	"github.com/courierbus/courier/internal/lazyfs"
	"github.com/courierbus/courier/persist"
)

// The power-cut tests run a store in a child process on a lazyfs mount,
// which keeps in memory whatever was not fsync'd (file data until the
// file's fsync, names until the directory's, or until any fsync under the
// ext4 rule) and drops it at a cut. They kill the child, cut, mount again
// and check what the store promised against what is there.

// powerChildEnv, when set to a JSON powerSpec, makes the test binary run
// powerChild instead of the tests (see TestMain).
const powerChildEnv = "COURIER_POWERCUT_CHILD"

type powerSpec struct {
	Dir      string
	Buffered bool
	Boot     string // the machine's boot, as the store sees it
	Verify   bool   // read the store (verifyChild) instead of appending
}

// bigRecord is a record size that goes to Badger's value log.
const bigRecord = 1<<20 + 100<<10

var powerTopics = []string{"cut.a", "cut.b", "cut.c", "cut.d"}

// powerChild opens the store and then obeys commands read from stdin,
// printing to stdout, each line only after what it reports is done:
//
//	R                       the store is open
//	E <topic> <epoch>       a topic's epoch, for each topic, after R
//	A <topic> <seq> <hash>  Append returned seq for a payload with hash
//	X <error>               an Append failed; that publisher stopped
//	D                       a seq command finished
//
// Commands: "seq <topic> <size> <count>" appends count records one after
// another; "fill <topic> <size>" appends records one after another until a
// memtable log is full and Badger has started another; "run <publishers> <size,size,...>" starts publishers that
// append, until killed, records of sizes drawn from the list to random
// topics.
func powerChild() {
	fail := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, format+"\n", args...)
		os.Exit(3)
	}
	var spec powerSpec
	if err := json.Unmarshal([]byte(os.Getenv(powerChildEnv)), &spec); err != nil {
		fail("spec: %v", err)
	}
	if spec.Verify {
		verifyChild(spec)
	}
	opts := []persist.Option{persist.MaxRecordSize(2 << 20), persist.WithBoot(spec.Boot)}
	if spec.Buffered {
		opts = append(opts, persist.Buffered())
	}
	s, err := persist.Open(spec.Dir, opts...)
	if err != nil {
		fail("open: %v", err)
	}
	var mu sync.Mutex
	emit := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if _, err := fmt.Fprintf(os.Stdout, format, args...); err != nil {
			os.Exit(4)
		}
	}
	ctx := context.Background()
	emit("R\n")
	for _, topic := range powerTopics {
		ts, err := s.Topic(ctx, topic)
		if err != nil {
			fail("topic: %v", err)
		}
		emit("E %s %d\n", topic, ts.Epoch)
	}
	pid := os.Getpid()
	var n sync.Mutex
	count := 0
	payload := func(size int) []byte {
		n.Lock()
		count++
		id := count
		n.Unlock()
		b := fmt.Appendf(nil, "%d/%d/", pid, id)
		for len(b) < size {
			b = append(b, byte('a'+len(b)%26))
		}
		return b
	}
	appendOne := func(topic string, size int) bool {
		data := payload(size)
		seq, err := s.Append(ctx, topic, bus.Record{Time: time.Now(), Data: data})
		if err != nil {
			emit("X %v\n", strings.ReplaceAll(err.Error(), "\n", " "))
			return false
		}
		emit("A %s %d %x\n", topic, seq, payloadHash(data))
		return true
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		switch {
		case len(f) == 4 && f[0] == "seq":
			size, _ := strconv.Atoi(f[2])
			count, _ := strconv.Atoi(f[3])
			for range count {
				if !appendOne(f[1], size) {
					break
				}
			}
			emit("D\n")
		case len(f) == 3 && f[0] == "fill":
			// Append until Badger starts a second memtable log, then stop.
			size, _ := strconv.Atoi(f[2])
			for memLogs(spec.Dir) < 2 && appendOne(f[1], size) {
			}
			emit("D\n")
		case len(f) == 3 && f[0] == "run":
			pubs, _ := strconv.Atoi(f[1])
			var sizes []int
			for _, v := range strings.Split(f[2], ",") {
				size, _ := strconv.Atoi(v)
				sizes = append(sizes, size)
			}
			for range pubs {
				go func() {
					for appendOne(powerTopics[rand.IntN(len(powerTopics))], sizes[rand.IntN(len(sizes))]) {
					}
				}()
			}
		default:
			fail("bad command %q", in.Text())
		}
	}
	time.Sleep(time.Minute) // the parent kills us long before
	fail("not killed")
}

// memLogs counts the memtable logs in dir.
func memLogs(dir string) int {
	names, _ := filepath.Glob(filepath.Join(dir, "*.mem"))
	return len(names)
}

// child is a running powerChild and what it printed so far.
type child struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr bytes.Buffer

	mu     sync.Mutex
	cond   *sync.Cond
	lines  []string
	closed bool
	waited map[string]int // lines waited for, by prefix
}

func startChild(t *testing.T, spec powerSpec) *child {
	t.Helper()
	raw, _ := json.Marshal(spec)
	c := &child{t: t, waited: map[string]int{}}
	c.cond = sync.NewCond(&c.mu)
	c.cmd = exec.Command(os.Args[0], "-test.run=^$")
	c.cmd.Env = append(os.Environ(), powerChildEnv+"="+string(raw))
	c.cmd.Stderr = &c.stderr
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.mu.Lock()
			c.lines = append(c.lines, sc.Text())
			c.cond.Broadcast()
			c.mu.Unlock()
		}
		c.mu.Lock()
		c.closed = true
		c.cond.Broadcast()
		c.mu.Unlock()
	}()
	c.waitFor("R", 30*time.Second)
	return c
}

func (c *child) send(cmd string) {
	c.t.Helper()
	if _, err := io.WriteString(c.stdin, cmd+"\n"); err != nil {
		c.t.Fatalf("to the child: %v", err)
	}
}

// waitFor waits until the child has printed one more line starting with
// prefix than it had when waitFor last returned for prefix, failing the
// test after d.
func (c *child) waitFor(prefix string, d time.Duration) {
	c.t.Helper()
	timer := time.AfterFunc(d, func() {
		c.mu.Lock()
		c.closed = true
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	defer timer.Stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		n := 0
		for _, l := range c.lines {
			if l == prefix || strings.HasPrefix(l, prefix+" ") {
				n++
			}
		}
		if n > c.waited[prefix] {
			c.waited[prefix]++
			return
		}
		if c.closed {
			c.t.Fatalf("child printed no %q within %v; stderr:\n%s", prefix, d, c.stderr.String())
		}
		c.cond.Wait()
	}
}

// kill kills the child with SIGKILL and waits for it.
func (c *child) kill() {
	c.cmd.Process.Kill()
	c.cmd.Wait()
}

// output returns what the child printed: the acknowledged records, the
// epochs it saw and the errors it got.
func (c *child) output() (acked map[ackKey]uint64, epochs map[string]uint64, errs []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	acked, epochs = map[ackKey]uint64{}, map[string]uint64{}
	for _, l := range c.lines {
		f := strings.Fields(l)
		switch f[0] {
		case "A":
			seq, _ := strconv.ParseUint(f[2], 10, 64)
			h, _ := strconv.ParseUint(f[3], 16, 64)
			acked[ackKey{f[1], seq}] = h
		case "E":
			epochs[f[1]], _ = strconv.ParseUint(f[2], 10, 64)
		case "X":
			errs = append(errs, l)
		}
	}
	return acked, epochs, errs
}

// storeContent is what a store holds: each topic's epoch and records.
type storeContent struct {
	epochs   map[string]uint64
	recs     map[ackKey]uint64 // payload hash by topic and seq
	lasts    map[string]uint64
	warnings []string // what the store logged as it opened
}

// readStore opens the store in dir as a host would after the cut, in a
// fresh child process. The child checks that the store and
// every topic open (also as a bus topic) and that every topic reads from
// its first record to its last with no gap and no payload twice; readStore
// returns what the store holds.
func readStore(t *testing.T, what, dir string) storeContent {
	t.Helper()
	raw, _ := json.Marshal(powerSpec{Dir: dir, Boot: what, Verify: true})
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), powerChildEnv+"="+string(raw))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	c := storeContent{epochs: map[string]uint64{}, recs: map[ackKey]uint64{}, lasts: map[string]uint64{}}
	ok := false
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		switch f[0] {
		case "T":
			c.epochs[f[1]], _ = strconv.ParseUint(f[2], 10, 64)
			c.lasts[f[1]], _ = strconv.ParseUint(f[3], 10, 64)
		case "C":
			seq, _ := strconv.ParseUint(f[2], 10, 64)
			h, _ := strconv.ParseUint(f[3], 16, 64)
			c.recs[ackKey{f[1], seq}] = h
		case "F":
			t.Fatalf("%s: %s", what, strings.TrimSpace(line[2:]))
		case "W":
			c.warnings = append(c.warnings, strings.TrimSpace(line[2:]))
		case "OK":
			ok = true
		}
	}
	if err != nil || !ok {
		t.Fatalf("%s: the store was not read: %v; stderr:\n%s", what, err, stderr.String())
	}
	return c
}

// warnPrinter prints each log line it gets as a W line.
type warnPrinter struct{}

func (warnPrinter) Write(p []byte) (int, error) {
	fmt.Printf("W %s\n", strings.TrimSpace(string(p)))
	return len(p), nil
}

// verifyChild is readStore's child: it reads the store and prints
//
//	T <topic> <epoch> <last>   for each topic
//	C <topic> <seq> <hash>     for each record
//	W <message>                for each warning the store logs
//	F <what failed>            and exits, or at the end
//	OK                         after a clean Close.
func verifyChild(spec powerSpec) {
	fail := func(format string, args ...any) {
		fmt.Printf("F "+format+"\n", args...)
		os.Exit(3)
	}
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(warnPrinter{}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := persist.Open(spec.Dir, persist.MaxRecordSize(2<<20), persist.WithBoot(spec.Boot), persist.WithLogger(log))
	if err != nil {
		fail("the store does not open: %v", err)
	}
	seen := map[uint64]ackKey{}
	for _, topic := range powerTopics {
		ts, err := s.Topic(ctx, topic)
		if err != nil {
			fail("topic %s does not open: %v", topic, err)
		}
		fmt.Printf("T %s %d %d\n", topic, ts.Epoch, ts.Last)
		var buf []bus.Record
		for from := max(ts.First, 1); from <= ts.Last; {
			buf, err = s.Read(ctx, topic, from, 256, buf[:0])
			if err != nil {
				fail("read %s from %d (last %d): %v", topic, from, ts.Last, err)
			}
			if len(buf) == 0 {
				fail("%s: nothing at %d, last %d", topic, from, ts.Last)
			}
			for _, r := range buf {
				if r.Seq != from {
					fail("%s: seq %d where %d was due (a gap)", topic, r.Seq, from)
				}
				h := payloadHash(r.Data)
				if prev, dup := seen[h]; dup {
					fail("one payload twice, at %s %d and %s %d", prev.topic, prev.seq, topic, r.Seq)
				}
				seen[h] = ackKey{topic, r.Seq}
				fmt.Printf("C %s %d %x\n", topic, r.Seq, h)
				from++
			}
		}
	}
	// The bus opens every topic on the store too (it reads the tail for its
	// de-duplication window).
	b, err := bus.New(bus.WithStore(s))
	if err != nil {
		fail("bus: %v", err)
	}
	for _, topic := range powerTopics {
		if _, err := bus.NewTopic[[]byte](b, topic); err != nil {
			fail("bus.NewTopic(%s): %v", topic, err)
		}
	}
	if err := b.Close(); err != nil {
		fail("bus close: %v", err)
	}
	if err := s.Close(); err != nil {
		fail("close: %v", err)
	}
	fmt.Println("OK")
	os.Exit(0)
}

// checkAcked fails the test for each acknowledged record that is not in c
// with its payload.
func checkAcked(t *testing.T, what string, c storeContent, acked map[ackKey]uint64) {
	t.Helper()
	lost := 0
	for k, h := range acked {
		if got, ok := c.recs[k]; !ok || got != h {
			lost++
			if lost <= 5 {
				t.Errorf("%s: acknowledged %s seq %d is lost (present %v, last %d)", what, k.topic, k.seq, ok, c.lasts[k.topic])
			}
		}
	}
	if lost > 0 {
		t.Fatalf("%s: %d of %d acknowledged records lost", what, lost, len(acked))
	}
}

// cutAndRestart kills the child and cuts the power (if an armed cut has not
// already), then mounts again.
func cutAndRestart(t *testing.T, f *lazyfs.FS, c *child) {
	t.Helper()
	c.kill()
	if err := f.Restart(); err != nil {
		t.Fatalf("restart: %v", err)
	}
}

// waitCut waits until an armed cut has happened.
func waitCut(t *testing.T, f *lazyfs.FS, what string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !f.IsCut() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: the armed cut did not happen", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
