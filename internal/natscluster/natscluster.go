// Package natscluster runs a NATS cluster with JetStream inside the
// process, on 127.0.0.1: for Courier's cluster tests, benchmarks and
// examples/cluster. Each server keeps JetStream's files under its own
// directory, so a server stopped and started again keeps its streams, and
// syncs them to disk on every write (sync_interval: always), the setting
// docs/cluster.md asks of production servers.
package natscluster

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Cluster is a set of routed NATS servers.
type Cluster struct {
	mu      sync.Mutex
	name    string
	dir     string
	ports   []int // client ports
	routes  []int // cluster ports
	servers []*server.Server
	via     func(from, to int, addr string) string
	peers   [][]string // each server's route URLs
	lazy    bool       // the servers sync as nats-server does by default
}

// Option configures Start.
type Option func(*Cluster)

// DefaultSync makes the servers sync to disk as nats-server does by
// default (every two minutes) rather than on every write: to measure what
// sync always costs, beside it.
func DefaultSync() Option { return func(c *Cluster) { c.lazy = true } }

// RouteVia makes server from reach server to's cluster port, addr, at the
// address f returns (a proxy in front of it, which the caller starts), for
// every ordered pair of servers. Servers then use no other route: each
// advertises an address where nothing listens, so what they tell each other
// about their real cluster ports leads nowhere.
func RouteVia(f func(from, to int, addr string) string) Option {
	return func(c *Cluster) { c.via = f }
}

// Start starts n servers (n ≥ 1) keeping their files under dir, and waits
// until JetStream is ready on all of them.
func Start(n int, dir string, opts ...Option) (*Cluster, error) {
	// The ports are found free, closed, then taken by the servers: another
	// process may take one in between. Then start again on other ports.
	var err error
	for try := range 3 {
		d := dir
		if try > 0 {
			d = filepath.Join(dir, "retry-"+strconv.Itoa(try)) // not the failed start's files
		}
		var c *Cluster
		if c, err = start(n, d, opts); err == nil {
			return c, nil
		}
	}
	return nil, err
}

func start(n int, dir string, opts []Option) (*Cluster, error) {
	c := &Cluster{name: "courier", dir: dir, servers: make([]*server.Server, n)}
	for _, o := range opts {
		o(c)
	}
	for range n {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		r, err := freePort()
		if err != nil {
			return nil, err
		}
		c.ports = append(c.ports, p)
		c.routes = append(c.routes, r)
	}
	for i := range n {
		var rs []string
		for j, r := range c.routes {
			if j == i {
				continue
			}
			addr := "127.0.0.1:" + strconv.Itoa(r)
			if c.via != nil {
				addr = c.via(i, j, addr)
			}
			rs = append(rs, "nats-route://"+addr)
		}
		c.peers = append(c.peers, rs)
	}
	for i := range n {
		if err := c.start(i); err != nil {
			c.Shutdown()
			return nil, err
		}
	}
	if err := c.WaitReady(30 * time.Second); err != nil {
		c.Shutdown()
		return nil, err
	}
	return c, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (c *Cluster) start(i int) error {
	opts := &server.Options{
		ServerName:             "nats-" + strconv.Itoa(i),
		Host:                   "127.0.0.1",
		Port:                   c.ports[i],
		NoLog:                  true,
		NoSigs:                 true,
		JetStream:              true,
		StoreDir:               c.Dir(i),
		DisableJetStreamBanner: true,
		JetStreamMaxMemory:     64 << 20,
		JetStreamMaxStore:      1 << 30,
		// Every write reaches the disk before it is acknowledged: with
		// the default (a sync every two minutes) a power cut of the
		// servers loses acknowledged writes.
		SyncAlways: !c.lazy,
	}
	if len(c.ports) > 1 {
		opts.Cluster = server.ClusterOpts{Name: c.name, Host: "127.0.0.1", Port: c.routes[i]}
		if c.via != nil {
			opts.Cluster.Advertise = "127.0.0.1:1" // nothing listens on port 1
		}
		opts.Routes = server.RoutesFromStr(strings.Join(c.peers[i], ","))
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("natscluster: server %d: %w", i, err)
	}
	go s.Start()
	if !s.ReadyForConnections(20 * time.Second) {
		s.Shutdown()
		return fmt.Errorf("natscluster: server %d did not start", i)
	}
	c.mu.Lock()
	c.servers[i] = s
	c.mu.Unlock()
	return nil
}

// WaitReady waits until every running server has JetStream on and the
// cluster has a JetStream meta leader.
func (c *Cluster) WaitReady(d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		ok, leader := true, len(c.servers) == 1
		for _, s := range c.servers {
			if s == nil {
				continue
			}
			if !s.JetStreamEnabled() {
				ok = false
			}
			if len(c.servers) > 1 && s.JetStreamIsLeader() {
				// The leader must know every running peer, or streams
				// with replicas cannot be placed yet.
				if jsz, err := s.Jsz(nil); err == nil && jsz.Meta != nil && len(jsz.Meta.Replicas)+1 >= c.running() {
					leader = true
					for _, p := range jsz.Meta.Replicas {
						if p.Offline || !p.Current {
							leader = false
						}
					}
				}
			}
		}
		c.mu.Unlock()
		if ok && leader {
			return nil
		}
		time.Sleep(25 * time.Millisecond)
	}
	return errors.New("natscluster: JetStream not ready")
}

// running counts the servers up. Caller holds mu.
func (c *Cluster) running() int {
	n := 0
	for _, s := range c.servers {
		if s != nil {
			n++
		}
	}
	return n
}

// URL returns the client URL of server i.
func (c *Cluster) URL(i int) string { return "nats://127.0.0.1:" + strconv.Itoa(c.ports[i]) }

// URLs returns every server's client URL, comma-separated (for nats.Connect).
func (c *Cluster) URLs() string {
	var us []string
	for i := range c.ports {
		us = append(us, c.URL(i))
	}
	return strings.Join(us, ",")
}

// Len returns the number of servers.
func (c *Cluster) Len() int { return len(c.ports) }

// Stop shuts server i down and waits for it.
func (c *Cluster) Stop(i int) {
	c.mu.Lock()
	s := c.servers[i]
	c.servers[i] = nil
	c.mu.Unlock()
	if s != nil {
		s.Shutdown()
		s.WaitForShutdown()
	}
}

// Restart starts server i again, on its old ports and files.
func (c *Cluster) Restart(i int) error {
	c.Stop(i)
	return c.start(i)
}

// Shutdown stops every server.
func (c *Cluster) Shutdown() {
	for i := range c.servers {
		c.Stop(i)
	}
}

// Routes returns how many routes server i has to other servers (0 when it
// is stopped).
func (c *Cluster) Routes(i int) int {
	c.mu.Lock()
	s := c.servers[i]
	c.mu.Unlock()
	if s == nil {
		return 0
	}
	return s.NumRoutes()
}

// Dir returns the directory of server i's files.
func (c *Cluster) Dir(i int) string { return filepath.Join(c.dir, "nats-"+strconv.Itoa(i)) }
