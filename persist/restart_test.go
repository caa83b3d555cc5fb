package persist_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/courierbus/courier/bus"
	"github.com/courierbus/courier/persist"
)

// restartChildEnv, when set to a directory, makes the test binary run
// restartChild instead of the tests (see TestMain).
const restartChildEnv = "COURIER_RESTART_CHILD"

const (
	restartRecords = 1_000_000
	restartTopics  = 4
)

// mem describes the process's memory: resident set, its anonymous and
// file-backed parts, and the Go heap in use, in KiB.
func mem() string {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return fmt.Sprintf("%d(anon %d file %d heap %d)", vmKiB("VmRSS"), vmKiB("RssAnon"), vmKiB("RssFile"), ms.HeapInuse>>10)
}

// vmKiB returns a field of /proc/self/status (VmRSS, VmHWM) in KiB, or -1.
func vmKiB(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err == nil {
				return n
			}
		}
	}
	return -1
}

// fillTopics appends n 64-byte records spread over the restart topics
// from 64 goroutines.
func fillTopics(s *persist.Store, n int64) error {
	data := bytes.Repeat([]byte("r"), 64)
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for range 64 {
		wg.Go(func() {
			for i := next.Add(1); i <= n; i = next.Add(1) {
				topic := fmt.Sprintf("restart.t%d", i%restartTopics)
				if _, err := s.Append(context.Background(), topic, bus.Record{Time: time.Now(), Data: data}); err != nil {
					mu.Lock()
					first = err
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}

// restartChild opens the store a fresh process, measuring the time Open
// takes and the resident set before and after, then reads and writes a
// little, and prints one line of key=value figures.
func restartChild() {
	dir := os.Getenv(restartChildEnv)
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	rssBefore := mem()
	start := time.Now()
	s, err := persist.Open(dir)
	if err != nil {
		fail(err)
	}
	openTime := time.Since(start)
	ctx := context.Background()
	var total uint64
	for i := range restartTopics {
		st, err := s.Topic(ctx, fmt.Sprintf("restart.t%d", i))
		if err != nil {
			fail(err)
		}
		total += st.Last
	}
	ready := time.Since(start)
	rssOpen := mem()
	// A consumer catching up from the start, and one reading the tail.
	var buf []bus.Record
	for i := range restartTopics {
		topic := fmt.Sprintf("restart.t%d", i)
		st, _ := s.Topic(ctx, topic)
		for _, from := range []uint64{1, st.Last - 999} {
			if buf, err = s.Read(ctx, topic, from, 1000, buf[:0]); err != nil || len(buf) != 1000 {
				fail(fmt.Errorf("read %s from %d: %d records, %v", topic, from, len(buf), err))
			}
		}
	}
	rssRead := mem()
	// Then a write load in synced mode, the default.
	loadStart := time.Now()
	if err := fillTopics(s, 100_000); err != nil {
		fail(err)
	}
	loadTime := time.Since(loadStart)
	rssLoad, hwm := mem(), vmKiB("VmHWM")
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	live := ms.HeapAlloc >> 10
	if err := s.Close(); err != nil {
		fail(err)
	}
	fmt.Printf("records=%d open=%v ready=%v rss_before=%s rss_open=%s rss_read=%s synced_100k=%v rss_load=%s hwm=%d live_heap_after_gc=%d\n",
		total, openTime.Round(time.Millisecond), ready.Round(time.Millisecond), rssBefore, rssOpen, rssRead,
		loadTime.Round(time.Millisecond), rssLoad, hwm, live)
}

// TestRestartLong fills a store with a million 64-byte records, closes it,
// and reopens it in a fresh process that reports how long Open took and
// the process's resident set. It is slow, so it runs only without -short
// and with COURIER_LONG=1.
func TestRestartLong(t *testing.T) {
	if testing.Short() || os.Getenv("COURIER_LONG") != "1" {
		t.Skip("set COURIER_LONG=1 (and no -short) to run")
	}
	dir := t.TempDir()
	s, err := persist.Open(dir, persist.Buffered())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := fillTopics(s, restartRecords); err != nil {
		t.Fatal(err)
	}
	fill := time.Since(start)
	start = time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("appended %d records (buffered, 64 appenders) in %v (%.0f records/s); Close took %v; parent RSS %d KiB",
		restartRecords, fill.Round(time.Millisecond), restartRecords/fill.Seconds(), time.Since(start).Round(time.Millisecond), vmKiB("VmRSS"))

	for range 2 { // the second reopen finds what the first one compacted
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), restartChildEnv+"="+dir)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("reopen child: %v\n%s", err, stderr.String())
		}
		line := strings.TrimSpace(stdout.String())
		t.Logf("reopen in a fresh process (KiB): %s", line)
		if !strings.HasPrefix(line, fmt.Sprintf("records=%d ", restartRecords)) {
			// The first reopen appended 100k more; count from the first.
			if !strings.HasPrefix(line, fmt.Sprintf("records=%d ", restartRecords+100_000)) {
				t.Fatalf("reopened store holds other than %d records: %s", restartRecords, line)
			}
		}
	}
	var sz int64
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if fi, err := e.Info(); err == nil {
			sz += fi.Size()
		}
	}
	t.Logf("directory: %d files, %.1f MiB apparent size", len(entries), float64(sz)/(1<<20))
}
