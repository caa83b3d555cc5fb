package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/courierbus/courier/bus"
	"github.com/courierbus/courier/persist"
)

// childEnv names the role a re-executed benchmark binary plays.
const childEnv = "COURIER_BENCH_CHILD"

// cpuProfileEnv, when set to a file name, makes a WebSocket server child
// write a CPU profile of its whole life there (with several runs, the
// last one's stays).
const cpuProfileEnv = "COURIER_BENCH_SERVER_CPUPROFILE"

// ChildMain plays the child role this process was started for, if any,
// and exits; it returns false at once in a process that is no child. Call
// it first in main and in TestMain of every binary that runs WebSocket or
// restart scenarios, with every WebSocket server the binary may be asked
// to run.
func ChildMain(servers ...WSServer) bool {
	role, ok := os.LookupEnv(childEnv)
	if !ok {
		return false
	}
	os.Unsetenv(childEnv)
	err := runChild(role, servers)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench child:", err)
		os.Exit(3)
	}
	os.Exit(0)
	return true
}

func runChild(role string, servers []WSServer) error {
	kind, arg, _ := strings.Cut(role, ":")
	switch kind {
	case "ws":
		for _, s := range servers {
			if s.Name == arg {
				return serveWS(s)
			}
		}
	case "soak":
		return serveSoak()
	case "reopen":
		what, dir, _ := strings.Cut(arg, ":")
		return reopenChild(what, dir)
	}
	return fmt.Errorf("%w %q", errNoRole, role)
}

// serveWS runs a WebSocket server with the controller's endpoints:
// /ctl/broadcast?n=N&k=K publishes N events indexed from K and answers
// when they are handed to the library; /ctl/rss collects garbage, returns
// freed memory to the OS and answers the resident set in bytes;
// /ctl/quit stops the process.
func serveWS(s WSServer) error {
	if _, err := RaiseFileLimit(); err != nil {
		return err
	}
	if path := os.Getenv(cpuProfileEnv); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	mux := http.NewServeMux()
	rt, err := s.Start(mux)
	if err != nil {
		return err
	}
	quit := make(chan struct{})
	mux.HandleFunc("/ctl/broadcast", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.FormValue("n"))
		k, _ := strconv.ParseInt(r.FormValue("k"), 10, 64)
		for i := range n {
			if err := rt.Broadcast(WSEvent{K: k + int64(i), T: time.Now().UnixNano(), Text: WSText}); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
		}
	})
	mux.HandleFunc("/ctl/rss", func(w http.ResponseWriter, r *http.Request) {
		runtime.GC()
		debug.FreeOSMemory()
		fmt.Fprint(w, RSS(0))
	})
	mux.HandleFunc("/ctl/quit", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-quit:
		default:
			close(quit)
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	fmt.Println("listening", ln.Addr())
	<-quit
	time.Sleep(10 * time.Millisecond) // let the quit answer go out
	done := make(chan error, 1)
	go func() { done <- errors.Join(rt.Close(), hs.Close()) }()
	select {
	case err := <-done:
		return err
	case <-time.After(3 * time.Second):
		return nil // a library that does not close in time is not what is measured
	}
}

// Restart scenario.

// RestartTopics is how many topics the restart scenario spreads its
// records over.
const RestartTopics = 4

// FillRestart writes n 64-byte records over RestartTopics topics into a
// buffered store in dir, from 64 goroutines, and closes it.
func FillRestart(dir string, n int) error {
	st, err := persist.Open(dir, persist.Buffered())
	if err != nil {
		return err
	}
	rec := bus.Record{Time: time.Now(), Data: RecordData()}
	var i atomic.Int64
	err = fill(n, func(ctx context.Context) error {
		_, err := st.Append(ctx, fmt.Sprintf("restart.t%d", i.Add(1)%RestartTopics), rec)
		return err
	})
	return errors.Join(err, st.Close())
}

// Metrics of the restart scenario.
const (
	OpenMs  = "open-ms"  // time to open the store
	ReadyMs = "ready-ms" // time until every topic's state is known
	RSSMiB  = "rss-mib"  // the process's resident set after opening
	Records = "records"  // records the reopened store holds
)

// RunReopen opens the store in dir in a fresh process, as what ("courier":
// persist.Open and each topic's state; "badger": a raw badger.Open with
// persist's options, the baseline; "none": nothing, the process's own
// resident set), and reports its figures.
func RunReopen(what, dir string) (Metrics, error) {
	c, err := startChild("reopen:" + what + ":" + dir)
	if err != nil {
		return nil, err
	}
	// The child prints its figures as the "listening" line's address.
	err = c.cmd.Wait()
	var m Metrics
	if jerr := json.Unmarshal([]byte(c.addr), &m); err == nil && jerr != nil {
		err = jerr
	}
	if err != nil {
		return nil, fmt.Errorf("bench: reopen %s: %v %s", what, err, c.errb.String())
	}
	return m, nil
}

func reopenChild(what, dir string) error {
	start := time.Now()
	m := Metrics{}
	switch what {
	case "courier":
		st, err := persist.Open(dir)
		if err != nil {
			return err
		}
		defer st.Close()
		m[OpenMs] = ms(time.Since(start))
		var total uint64
		for i := range RestartTopics {
			ts, err := st.Topic(context.Background(), fmt.Sprintf("restart.t%d", i))
			if err != nil {
				return err
			}
			total += ts.Last
		}
		m[ReadyMs] = ms(time.Since(start))
		m[Records] = float64(total)
	case "badger":
		db, err := badger.Open(BadgerOptions(dir))
		if err != nil {
			return err
		}
		defer db.Close()
		m[OpenMs] = ms(time.Since(start))
		m[ReadyMs] = m[OpenMs]
	case "none":
	default:
		return fmt.Errorf("%w reopen:%s", errNoRole, what)
	}
	m[RSSMiB] = float64(RSS(0)) / (1 << 20)
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	fmt.Printf("listening %s\n", b)
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }
