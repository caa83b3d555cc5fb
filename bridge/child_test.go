package bridge_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/olahol/melody"

	"github.com/courierbus/courier/bridge"
	"github.com/courierbus/courier/bus"
)

// The benchmarks run the server in a child process (this test binary
// started again with serverEnv set), so that the clients' memory and CPU,
// which share the machine, are not counted as the server's.
const serverEnv = "COURIER_BRIDGE_TEST_SERVER"

// serverProcsEnv sets the child's GOMAXPROCS (default: half the CPUs), to
// see the server with writers running beside the fan-out on a small
// machine.
const serverProcsEnv = "COURIER_BRIDGE_TEST_SERVER_PROCS"

// serverStats is what the child reports about itself.
type serverStats struct {
	RSS        int64 // resident set, bytes
	Heap       int64 // HeapInuse after GC
	Stack      int64 // StackInuse
	CPU        int64 // user+system time, nanoseconds
	Writes     int64 // write system calls (syscw in /proc/self/io)
	Goroutines int
}

func readStats() serverStats {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	st := serverStats{
		Heap: int64(ms.HeapInuse), Stack: int64(ms.StackInuse), Goroutines: runtime.NumGoroutine(),
		CPU: ru.Utime.Nano() + ru.Stime.Nano(),
	}
	if b, err := os.ReadFile("/proc/self/io"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if n, ok := strings.CutPrefix(line, "syscw: "); ok {
				st.Writes, _ = strconv.ParseInt(n, 10, 64)
			}
		}
	}
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				st.RSS = kb << 10
			}
		}
	}
	return st
}

// runServer is the child's main: it serves mode on 127.0.0.1, prints its
// address, and runs until its stdin closes.
func runServer(mode string) {
	if os.Getenv("COURIER_HEAP_PROFILE") != "" {
		runtime.MemProfileRate = 1 // every allocation: a profile of a few KiB per connection
	}
	mux := http.NewServeMux()
	var publish func(n, size int, volatile bool)
	switch mode {
	case "bridge":
		b, _ := bus.New(bus.History(64, 0))
		br, err := bridge.New(b, bridge.Expose("bench.>", bridge.Subscribe),
			bridge.RateLimit(1e6, 1e6), bridge.OutboundLimit(64<<20))
		if err != nil {
			panic(err)
		}
		mux.Handle("/bus/", br)
		publish = func(n, size int, volatile bool) {
			data := []byte(`"` + strings.Repeat("x", size) + `"`)
			var opts []bus.PublishOption
			if volatile {
				opts = append(opts, bus.Volatile())
			}
			for range n {
				b.PublishRaw(context.Background(), "bench.all", data, opts...)
			}
		}
	case "melody", "melody-tuned":
		m := melody.New()
		if mode == "melody-tuned" {
			m.Upgrader.ReadBufferSize = 512
			m.Upgrader.WriteBufferPool = &sync.Pool{}
			m.Config.MessageBufferSize = 16
		}
		mux.HandleFunc("/bus/", func(w http.ResponseWriter, r *http.Request) { m.HandleRequest(w, r) })
		seq := 0
		publish = func(n, size int, _ bool) {
			for range n {
				seq++
				// The bytes the bridge would send for the same message.
				msg := fmt.Appendf(nil, `{"op":"message","sub":"s","topic":"bench.all","epoch":"1","seq":%d,"data":"%s"}`, seq, strings.Repeat("x", size))
				m.Broadcast(msg)
			}
		}
	default:
		panic("unknown mode " + mode)
	}
	mux.HandleFunc("/heap", func(w http.ResponseWriter, _ *http.Request) {
		runtime.GC()
		pprof.Lookup("heap").WriteTo(w, 0)
	})
	mux.HandleFunc("/stats", func(w http.ResponseWriter, _ *http.Request) { json.NewEncoder(w).Encode(readStats()) })
	mux.HandleFunc("/publish", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		size, _ := strconv.Atoi(r.URL.Query().Get("size"))
		publish(n, size, r.URL.Query().Get("volatile") == "1")
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute}
	go srv.Serve(ln)
	fmt.Println(ln.Addr().String())
	bufio.NewReader(os.Stdin).ReadString('\n') // until the parent goes
	os.Exit(0)
}

// childServer is a server process.
type childServer struct {
	cmd  *exec.Cmd
	addr string
	stop func()
}

func startServer(tb testing.TB, mode string) *childServer {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	procs := strconv.Itoa(max(1, runtime.NumCPU()/2))
	if p := os.Getenv(serverProcsEnv); p != "" {
		procs = p
	}
	cmd.Env = append(os.Environ(), serverEnv+"="+mode, "GOMAXPROCS="+procs)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		tb.Fatal(err)
	}
	c := &childServer{cmd: cmd, addr: strings.TrimSpace(addr)}
	c.stop = func() { stdin.Close(); cmd.Wait() }
	tb.Cleanup(c.stop)
	return c
}

func (c *childServer) stats(tb testing.TB) serverStats {
	tb.Helper()
	resp, err := http.Get("http://" + c.addr + "/stats")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var st serverStats
	json.NewDecoder(resp.Body).Decode(&st)
	return st
}

func (c *childServer) publish(tb testing.TB, n, size int, volatile bool) {
	tb.Helper()
	v := "0"
	if volatile {
		v = "1"
	}
	resp, err := http.Get(fmt.Sprintf("http://%s/publish?n=%d&size=%d&volatile=%s", c.addr, n, size, v))
	if err != nil {
		tb.Fatal(err)
	}
	resp.Body.Close()
}
