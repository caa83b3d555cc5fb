package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/courierbus/courier/bus"
	"github.com/courierbus/courier/cluster"
	"github.com/courierbus/courier/examples/internal/chatapp"
	"github.com/courierbus/courier/internal/natscluster"
)

// config is what the command line sets.
type config struct {
	addrs   []string      // one chat node on each
	dataDir string        // NATS's files; "": a temporary directory
	history int           // messages shown on joining a room
	logger  *slog.Logger  // nil: discard
	timeout time.Duration // http.Server read and write timeouts; 0: 30s
	// accounts are the users who may sign in, on every node; nil: none
	// yet, with passwords hashed at chatapp.DefaultHashCost.
	accounts *chatapp.Accounts
}

// run starts the cluster, prints the nodes' URLs on out, and serves until
// ctx ends or a node fails.
func run(ctx context.Context, cfg config, out io.Writer) error {
	c, err := start(cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "cluster: %d NATS servers with JetStream, files in %s\n", c.nats.Len(), c.dir)
	for _, n := range c.nodes {
		fmt.Fprintf(out, "cluster: node %s: open %s\n", n.name, n.url)
	}
	fmt.Fprintf(out, "cluster: stop and start nodes at %snodes/ (any node serves it)\n", c.nodes[0].url)
	fmt.Fprintln(out, "cluster: open two nodes in two windows and chat; stop with Ctrl-C")
	var failed error
	select {
	case <-ctx.Done():
	case n := <-c.exited:
		failed = fmt.Errorf("cluster: node %s stopped by itself", n.name) // Close says why
	}
	return errors.Join(failed, c.Close())
}

// chatCluster is the NATS cluster and the chat nodes on it.
type chatCluster struct {
	cfg    config
	nats   *natscluster.Cluster
	dir    string // NATS's files
	temp   bool   // dir is ours to remove
	nodes  []*chatNode
	exited chan *chatNode // nodes whose server returned without being stopped
	log    *slog.Logger
	key    []byte // the bridges' SessionKey, the same on every node
	// accounts are the chat's users, the same on every node: a user signed
	// in on one is signed in on all (their cookies are signed with a key
	// derived from key).
	accounts *chatapp.Accounts

	ctl     sync.Mutex  // one stop or start at a time, from the nodes' pages
	closing atomic.Bool // Close has begun: no more stops and starts
}

// chatNode is one node: a NATS connection, a cluster.Node, a bus and the
// chat served on its own listener. A stopped node starts again on the
// same address.
type chatNode struct {
	name  string
	url   string   // the page: http://127.0.0.1:port/
	addr  string   // the address it listens on
	peers []string // the other nodes' pages, in the order its page fails over

	mu     sync.Mutex
	cancel context.CancelFunc // nil while stopped
	done   chan struct{}      // closed when the server returned
	err    error              // what it returned; read after done
}

// start starts a NATS server per address in cfg.addrs and a chat node on
// each address, connected to its own server.
func start(cfg config) (_ *chatCluster, err error) {
	if len(cfg.addrs) == 0 {
		return nil, errors.New("cluster: no addresses")
	}
	log := cfg.logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &chatCluster{cfg: cfg, dir: cfg.dataDir, exited: make(chan *chatNode, len(cfg.addrs)), log: log,
		key: make([]byte, 32), accounts: cfg.accounts}
	if c.accounts == nil {
		c.accounts = chatapp.NewAccounts()
	}
	rand.Read(c.key) // a secret of this run: sessions carry over between its nodes
	if c.dir == "" {
		if c.dir, err = os.MkdirTemp("", "courier-cluster-"); err != nil {
			return nil, err
		}
		c.temp = true
	}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	// Listen first: every node's page must know the others' addresses.
	lns := make([]net.Listener, len(cfg.addrs))
	defer func() {
		for _, ln := range lns {
			if ln != nil {
				ln.Close() // not handed to a node
			}
		}
	}()
	urls := make([]string, len(cfg.addrs))
	for i, a := range cfg.addrs {
		if lns[i], err = net.Listen("tcp", strings.TrimSpace(a)); err != nil {
			return nil, fmt.Errorf("cluster: %w", err)
		}
		urls[i] = "http://" + lns[i].Addr().String() + "/"
	}
	if c.nats, err = natscluster.Start(len(cfg.addrs), c.dir); err != nil {
		return nil, fmt.Errorf("cluster: start NATS: %w", err)
	}
	for i := range cfg.addrs {
		// The page fails over to the next nodes, in turn.
		n := &chatNode{name: string(rune('A' + i)), url: urls[i], addr: lns[i].Addr().String()}
		for k := 1; k < len(urls); k++ {
			n.peers = append(n.peers, urls[(i+k)%len(urls)])
		}
		c.nodes = append(c.nodes, n)
		if err := c.startNode(i, lns[i]); err != nil {
			return nil, err
		}
		lns[i] = nil
	}
	return c, nil
}

// startNode starts node i on ln: connects to NATS server i, joins the
// cluster and serves the chat, and the nodes' controls at /nodes/.
func (c *chatCluster) startNode(i int, ln net.Listener) error {
	n := c.nodes[i]
	log := c.log.With("node", n.name)
	nc, err := nats.Connect(c.nats.URL(i), nats.Name("chat-"+n.name),
		nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond))
	if err != nil {
		ln.Close()
		return fmt.Errorf("cluster: node %s: connect to NATS: %w", n.name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	node, err := cluster.New(ctx, nc, cluster.Config{Name: n.name, Replicas: c.nats.Len(), Logger: log})
	if err != nil {
		nc.Close()
		ln.Close()
		return fmt.Errorf("cluster: node %s: %w", n.name, err)
	}
	b, err := bus.New(bus.WithBroker(node), bus.WithLogger(log), bus.MaxTopics(chatapp.MaxTopics))
	if err != nil {
		node.Close()
		nc.Close()
		ln.Close()
		return err
	}
	// Closed in this order after the chat's bridge: the bus, the node,
	// then its connection.
	s, err := chatapp.New(b, chatapp.WithLogger(log), chatapp.History(c.cfg.history),
		chatapp.Failover(n.peers...), chatapp.SessionKey(c.key), chatapp.WithAccounts(c.accounts),
		chatapp.Handle("GET /nodes/{$}", c.controlPage()),
		chatapp.Handle("POST /nodes/{node}/{op}", c.control(n)),
		chatapp.CloseAfter(b, node, closer(func() error { nc.Close(); return nil })))
	if err != nil {
		b.Close()
		node.Close()
		nc.Close()
		ln.Close()
		return err
	}
	sctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	n.mu.Lock()
	n.cancel, n.done, n.err = stop, done, nil
	n.mu.Unlock()
	go func() {
		err := chatapp.Serve(sctx, ln, s, c.cfg.timeout)
		n.mu.Lock()
		n.err = err
		n.mu.Unlock()
		close(done)
		if sctx.Err() == nil { // not stopped: it failed
			select {
			case c.exited <- n:
			default:
			}
		}
	}()
	return nil
}

type closer func() error

func (f closer) Close() error { return f() }

// running reports whether the node serves.
func (n *chatNode) running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cancel != nil
}

// halt tells the node's server to stop, without waiting: its bridge, bus
// and cluster node close after it. NATS goes on.
func (n *chatNode) halt() {
	n.mu.Lock()
	cancel := n.cancel
	n.cancel = nil
	n.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// stop halts the node and waits until its server has returned, and
// returns what it returned; nil for a node that never started.
func (n *chatNode) stop() error {
	n.halt()
	n.mu.Lock()
	done := n.done
	n.mu.Unlock()
	if done == nil {
		return nil
	}
	<-done
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.err
}

// restart starts node i again on its address, once its last server has
// returned.
func (c *chatCluster) restart(i int) error {
	c.nodes[i].stop()
	ln, err := net.Listen("tcp", c.nodes[i].addr)
	if err != nil {
		return fmt.Errorf("cluster: node %s: %w", c.nodes[i].name, err)
	}
	return c.startNode(i, ln)
}

// Close stops every node, then the NATS servers, and removes NATS's files
// if they were in a temporary directory.
func (c *chatCluster) Close() error {
	c.closing.Store(true)
	c.ctl.Lock() // waits for a stop or start under way
	c.ctl.Unlock()
	var errs []error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		wg.Go(func() {
			if err := n.stop(); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("cluster: node %s: %w", n.name, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if c.nats != nil {
		c.nats.Shutdown()
	}
	if c.temp {
		errs = append(errs, os.RemoveAll(c.dir))
	}
	return errors.Join(errs...)
}
