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
	fmt.Fprintln(out, "cluster: open two nodes in two windows and chat; stop with Ctrl-C")
	var failed error
	select {
	case <-ctx.Done():
	case n := <-c.exited:
		failed = fmt.Errorf("cluster: node %s stopped", n.name) // Close says why
	}
	return errors.Join(failed, c.Close())
}

// chatCluster is the NATS cluster and the chat nodes on it.
type chatCluster struct {
	nats   *natscluster.Cluster
	dir    string // NATS's files
	temp   bool   // dir is ours to remove
	nodes  []*chatNode
	exited chan *chatNode // nodes whose server returned, stopped or not
	log    *slog.Logger
	key    []byte // the bridges' SessionKey, the same on every node
	// accounts are the chat's users, the same on every node: a user signed
	// in on one is signed in on all (their cookies are signed with a key
	// derived from key).
	accounts *chatapp.Accounts
}

// chatNode is one node: a NATS connection, a cluster.Node, a bus and the
// chat served on its own listener.
type chatNode struct {
	name   string
	url    string // the page: http://127.0.0.1:port/
	cancel context.CancelFunc
	done   chan struct{} // closed when the server returned
	err    error         // what it returned; read after done
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
	c := &chatCluster{dir: cfg.dataDir, exited: make(chan *chatNode, len(cfg.addrs)), log: log, key: make([]byte, 32),
		accounts: chatapp.NewAccounts()}
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
		var peers []string
		for k := 1; k < len(urls); k++ {
			peers = append(peers, urls[(i+k)%len(urls)])
		}
		n, err := c.startNode(cfg, i, lns[i], urls[i], peers)
		if err != nil {
			return nil, err
		}
		lns[i] = nil
		c.nodes = append(c.nodes, n)
	}
	return c, nil
}

// startNode starts node i on ln: connects to NATS server i, joins the
// cluster and serves the chat.
func (c *chatCluster) startNode(cfg config, i int, ln net.Listener, url string, peers []string) (*chatNode, error) {
	name := string(rune('A' + i))
	log := c.log.With("node", name)
	nc, err := nats.Connect(c.nats.URL(i), nats.Name("chat-"+name),
		nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond))
	if err != nil {
		return nil, fmt.Errorf("cluster: node %s: connect to NATS: %w", name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	node, err := cluster.New(ctx, nc, cluster.Config{Name: name, Replicas: c.nats.Len(), Logger: log})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("cluster: node %s: %w", name, err)
	}
	b, err := bus.New(bus.WithBroker(node), bus.WithLogger(log), bus.MaxTopics(chatapp.MaxTopics))
	if err != nil {
		node.Close()
		nc.Close()
		return nil, err
	}
	// Closed in this order after the chat's bridge: the bus, the node,
	// then its connection.
	s, err := chatapp.New(b, chatapp.WithLogger(log), chatapp.History(cfg.history), chatapp.Failover(peers...), chatapp.SessionKey(c.key),
		chatapp.WithAccounts(c.accounts),
		chatapp.CloseAfter(b, node, closer(func() error { nc.Close(); return nil })))
	if err != nil {
		b.Close()
		node.Close()
		nc.Close()
		return nil, err
	}
	sctx, stop := context.WithCancel(context.Background())
	n := &chatNode{name: name, url: url, cancel: stop, done: make(chan struct{})}
	go func() {
		defer close(n.done)
		n.err = chatapp.Serve(sctx, ln, s, cfg.timeout)
		c.exited <- n
	}()
	return n, nil
}

type closer func() error

func (f closer) Close() error { return f() }

// stop stops the node's server, bridge, bus and cluster node, and returns
// what the server returned. NATS goes on.
func (n *chatNode) stop() error {
	n.cancel()
	<-n.done
	return n.err
}

// Close stops every node, then the NATS servers, and removes NATS's files
// if they were in a temporary directory.
func (c *chatCluster) Close() error {
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
