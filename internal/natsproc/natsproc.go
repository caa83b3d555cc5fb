// Package natsproc runs a NATS cluster as separate nats-server processes
// on 127.0.0.1, at the nats-server version of the go.mod, for tests that
// need what an in-process server cannot give: kill -9 of a server, and a
// server's files on a file system the test controls (a power cut).
//
// Each server is routed to the others, has JetStream on with its store in
// a directory the caller gives, and a monitoring port for readiness. The
// servers' configuration files and logs go to a directory of their own.
package natsproc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Option configures [Start].
type Option interface{ apply(*config) }

type config struct {
	syncAlways bool
}

type syncAlways struct{}

func (syncAlways) apply(c *config) { c.syncAlways = true }

// SyncAlways has every server fsync JetStream's files on every write
// (`sync_interval: always`). Default: NATS's default, an fsync every two
// minutes.
func SyncAlways() Option { return syncAlways{} }

// Cluster is a set of routed nats-server processes. Its methods are safe
// for concurrent use, but each server should be started and stopped by
// one goroutine at a time.
type Cluster struct {
	exe    string
	dir    string   // configuration files and logs
	stores []string // JetStream store directories
	cfg    config
	ports  []int // client, route and monitoring port of each server
	routes []int
	mons   []int

	mu    sync.Mutex
	procs []*proc // nil while a server is down
	wg    sync.WaitGroup
}

// proc is one running server.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited and been reaped
}

// Start builds or finds the nats-server binary ([Binary]) and starts one
// server per store directory (at least one), writing their configuration
// and logs under dir, then waits until the cluster is ready ([Cluster.WaitReady]).
// Cancelling ctx abandons the start; the servers started are killed.
func Start(ctx context.Context, dir string, stores []string, opts ...Option) (*Cluster, error) {
	if len(stores) == 0 {
		return nil, errors.New("natsproc: no store directory")
	}
	exe, err := Binary(ctx)
	if err != nil {
		return nil, err
	}
	var cfg config
	for _, o := range opts {
		o.apply(&cfg)
	}
	// The ports are found free, closed, then taken by the servers: another
	// process may take one in between. Then start again on other ports.
	for try := 0; ; try++ {
		c := &Cluster{exe: exe, dir: dir, stores: stores, cfg: cfg, procs: make([]*proc, len(stores))}
		if err = c.pickPorts(); err != nil {
			return nil, err
		}
		if err = c.startAll(ctx); err == nil {
			return c, nil
		}
		c.Close()
		if try == 2 || ctx.Err() != nil {
			return nil, err
		}
	}
}

func (c *Cluster) startAll(ctx context.Context) error {
	for i := range c.stores {
		if err := c.launch(i); err != nil {
			return err
		}
	}
	for i := range c.stores {
		if err := c.waitUp(ctx, i); err != nil {
			return err
		}
	}
	return c.WaitReady(ctx)
}

// pickPorts chooses free ports below the usual ephemeral range (32768 and
// up on Linux), so that the client connections of the test, which take
// ephemeral ports, cannot hold a port while its server is down.
func (c *Cluster) pickPorts() error {
	taken := map[int]bool{}
	pick := func() (int, error) {
		for range 200 {
			p := 20000 + rand.IntN(12000)
			if taken[p] {
				continue
			}
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				continue
			}
			l.Close()
			taken[p] = true
			return p, nil
		}
		return 0, errors.New("natsproc: no free port")
	}
	for range c.stores {
		for _, ps := range []*[]int{&c.ports, &c.routes, &c.mons} {
			p, err := pick()
			if err != nil {
				return err
			}
			*ps = append(*ps, p)
		}
	}
	return nil
}

// Name returns server i's name, as NATS reports it: "nats-<i>".
func (c *Cluster) Name(i int) string { return "nats-" + strconv.Itoa(i) }

// Len returns the number of servers.
func (c *Cluster) Len() int { return len(c.stores) }

// URL returns the client URL of server i.
func (c *Cluster) URL(i int) string { return "nats://127.0.0.1:" + strconv.Itoa(c.ports[i]) }

// URLs returns every server's client URL, comma-separated (for nats.Connect).
func (c *Cluster) URLs() string {
	us := make([]string, c.Len())
	for i := range us {
		us[i] = c.URL(i)
	}
	return strings.Join(us, ",")
}

// Log returns the path of server i's log (every life of the server appends
// to it).
func (c *Cluster) Log(i int) string { return filepath.Join(c.dir, c.Name(i)+".log") }

// Running reports whether server i's process is running.
func (c *Cluster) Running(i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.procs[i] != nil
}

func (c *Cluster) conf(i int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "server_name: %q\nlisten: \"127.0.0.1:%d\"\nhttp: \"127.0.0.1:%d\"\n", c.Name(i), c.ports[i], c.mons[i])
	fmt.Fprintf(&b, "jetstream {\n  store_dir: %q\n  max_memory_store: 64MB\n  max_file_store: 1GB\n", c.stores[i])
	if c.cfg.syncAlways {
		b.WriteString("  sync_interval: always\n")
	}
	b.WriteString("}\n")
	if len(c.stores) > 1 {
		fmt.Fprintf(&b, "cluster {\n  name: \"courier\"\n  listen: \"127.0.0.1:%d\"\n  routes: [\n", c.routes[i])
		for j, r := range c.routes {
			if j != i {
				fmt.Fprintf(&b, "    \"nats-route://127.0.0.1:%d\"\n", r)
			}
		}
		b.WriteString("  ]\n}\n")
	}
	return b.String()
}

// launch starts server i's process without waiting for it to serve.
func (c *Cluster) launch(i int) error {
	c.mu.Lock()
	running := c.procs[i] != nil
	c.mu.Unlock()
	if running {
		return fmt.Errorf("natsproc: server %d is running", i)
	}
	if err := os.MkdirAll(c.stores[i], 0o755); err != nil {
		return fmt.Errorf("natsproc: %w", err)
	}
	conf := filepath.Join(c.dir, c.Name(i)+".conf")
	if err := os.WriteFile(conf, []byte(c.conf(i)), 0o644); err != nil {
		return fmt.Errorf("natsproc: %w", err)
	}
	log, err := os.OpenFile(c.Log(i), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("natsproc: %w", err)
	}
	defer log.Close() // the child has its own descriptor
	fmt.Fprintf(log, "\n=== natsproc: start %s at %s\n", c.Name(i), time.Now().UTC().Format(time.RFC3339Nano))
	cmd := exec.Command(c.exe, "-c", conf)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("natsproc: start %s: %w", c.Name(i), err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		cmd.Wait()
		close(p.done)
	}()
	c.mu.Lock()
	c.procs[i] = p
	c.mu.Unlock()
	return nil
}

// waitUp waits until server i answers on its monitoring port with
// JetStream enabled, or its process exits.
func (c *Cluster) waitUp(ctx context.Context, i int) error {
	c.mu.Lock()
	p := c.procs[i]
	c.mu.Unlock()
	if p == nil {
		return fmt.Errorf("natsproc: %s is down", c.Name(i))
	}
	for {
		if c.get(ctx, i, "/healthz?js-enabled-only=true", nil) == nil {
			return nil
		}
		select {
		case <-p.done:
			c.reap(i, p)
			return fmt.Errorf("natsproc: %s exited at start (%s): see %s", c.Name(i), p.cmd.ProcessState, c.Log(i))
		case <-ctx.Done():
			return fmt.Errorf("natsproc: %s not up: %w", c.Name(i), ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// get fetches path from server i's monitoring port, decoding JSON into v
// when v is not nil; a status other than 200 is an error.
func (c *Cluster) get(ctx context.Context, i int, path string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:"+strconv.Itoa(c.mons[i])+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("natsproc: %s %s: %s", c.Name(i), path, resp.Status)
	}
	if v == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// StartServer starts server i again, on its ports and store directory, and
// waits until it serves with JetStream enabled (not for the cluster: see
// [Cluster.WaitReady]).
func (c *Cluster) StartServer(ctx context.Context, i int) error {
	if err := c.launch(i); err != nil {
		return err
	}
	return c.waitUp(ctx, i)
}

// Kill kills server i with SIGKILL and returns once the process is gone. A
// server that is down is not an error.
func (c *Cluster) Kill(i int) {
	c.mu.Lock()
	p := c.procs[i]
	c.mu.Unlock()
	if p == nil {
		return
	}
	p.cmd.Process.Kill()
	<-p.done
	c.reap(i, p)
}

// Stop asks server i to shut down (SIGTERM: JetStream's files are synced
// and closed) and returns once it has; past ctx it is killed.
func (c *Cluster) Stop(ctx context.Context, i int) {
	c.mu.Lock()
	p := c.procs[i]
	c.mu.Unlock()
	if p == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-ctx.Done():
		p.cmd.Process.Kill()
		<-p.done
	}
	c.reap(i, p)
}

func (c *Cluster) reap(i int, p *proc) {
	c.mu.Lock()
	if c.procs[i] == p {
		c.procs[i] = nil
	}
	c.mu.Unlock()
}

// WaitReady waits until every running server has JetStream enabled and
// one of them is the JetStream meta leader with every running server a
// current peer: streams with replicas can then be placed. It returns
// ctx's error, with what was missing, when ctx ends first.
func (c *Cluster) WaitReady(ctx context.Context) error {
	var why error
	for {
		if why = c.ready(ctx); why == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("natsproc: cluster not ready: %w (%v)", ctx.Err(), why)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (c *Cluster) ready(ctx context.Context) error {
	up := map[string]bool{}
	for i := range c.stores {
		if c.Running(i) {
			up[c.Name(i)] = true
		}
	}
	if len(up) == 0 {
		return errors.New("no server running")
	}
	leader := false
	for i := range c.stores {
		if !up[c.Name(i)] {
			continue
		}
		if err := c.get(ctx, i, "/healthz?js-enabled-only=true", nil); err != nil {
			return err
		}
		var jsz server.JSInfo
		if err := c.get(ctx, i, "/jsz", &jsz); err != nil {
			return err
		}
		if len(c.stores) == 1 {
			leader = true
			continue
		}
		if jsz.Meta == nil || jsz.Meta.Leader != c.Name(i) {
			continue
		}
		current := 1
		for _, p := range jsz.Meta.Replicas {
			if up[p.Name] && p.Current && !p.Offline {
				current++
			}
		}
		leader = current >= len(up)
	}
	if !leader {
		return errors.New("no meta leader with every running server current")
	}
	return nil
}

// Close kills every running server and waits for them.
func (c *Cluster) Close() {
	for i := range c.stores {
		c.Kill(i)
	}
	c.wg.Wait()
}
