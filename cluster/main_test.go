package cluster_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/courierbus/courier/bridge"
	"github.com/courierbus/courier/bus"
	"github.com/courierbus/courier/bus/bustest"
	"github.com/courierbus/courier/cluster"
	"github.com/courierbus/courier/internal/natscluster"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testCluster is a 3-server NATS cluster in the test process and a bus
// per server, each joined to the cluster through its own server.
type testCluster struct {
	t     testing.TB
	nats  *natscluster.Cluster
	nodes []*testNode
	cfg   cluster.Config
	opts  []bus.Option
}

type testNode struct {
	nc   *nats.Conn
	node *cluster.Node
	bus  *bus.Bus
	br   *bridge.Bridge   // with serve
	srv  *httptest.Server // with serve
	url  string           // the bridge's ws:// URL, with serve
}

// serve mounts a bridge over bus i at /bus/ on 127.0.0.1.
func (tc *testCluster) serve(i int, opts ...bridge.Option) string {
	tc.t.Helper()
	tn := tc.nodes[i]
	br, err := bridge.New(tn.bus, opts...)
	if err != nil {
		tc.t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/bus/", br)
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.ReadHeaderTimeout = 5 * time.Second
	srv.Config.ReadTimeout = 10 * time.Second
	srv.Config.WriteTimeout = 10 * time.Second
	srv.Config.IdleTimeout = 30 * time.Second
	srv.Start()
	tn.br, tn.srv = br, srv
	tn.url = "ws" + strings.TrimPrefix(srv.URL, "http") + "/bus/"
	return tn.url
}

func newCluster(t testing.TB, n int, cfg cluster.Config, opts ...bus.Option) *testCluster {
	t.Helper()
	nc, err := natscluster.Start(n, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return newClusterOn(t, nc, cfg, opts...)
}

// newClusterOn is newCluster on NATS servers already started; it shuts
// them down at the end.
func newClusterOn(t testing.TB, nc *natscluster.Cluster, cfg cluster.Config, opts ...bus.Option) *testCluster {
	t.Helper()
	n := nc.Len()
	tc := &testCluster{t: t, nats: nc, nodes: make([]*testNode, n), cfg: cfg, opts: opts}
	t.Cleanup(func() {
		for i := range tc.nodes {
			tc.stopNode(i)
		}
		nc.Shutdown()
	})
	if tc.cfg.Replicas == 0 {
		tc.cfg.Replicas = n
	}
	for i := range n {
		tc.startNode(i)
	}
	return tc
}

// startNode starts bus i on NATS server i.
func (tc *testCluster) startNode(i int) *testNode {
	tc.t.Helper()
	conn, err := nats.Connect(tc.nats.URL(i), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		tc.t.Fatal(err)
	}
	cfg := tc.cfg
	cfg.Name = "node" + string(rune('A'+i))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	node, err := cluster.New(ctx, conn, cfg)
	if err != nil {
		conn.Close()
		tc.t.Fatal(err)
	}
	b, err := bus.New(append([]bus.Option{bus.WithBroker(node)}, tc.opts...)...)
	if err != nil {
		node.Close()
		conn.Close()
		tc.t.Fatal(err)
	}
	tn := &testNode{nc: conn, node: node, bus: b}
	tc.nodes[i] = tn
	return tn
}

// stopNode closes bus i, its node and its connection.
func (tc *testCluster) stopNode(i int) {
	tn := tc.nodes[i]
	if tn == nil {
		return
	}
	tc.nodes[i] = nil
	if tn.br != nil {
		tn.srv.CloseClientConnections()
		tn.br.Close()
		tn.srv.Close()
	}
	tn.bus.Close()
	tn.node.Close()
	tn.nc.Close()
}

func (tc *testCluster) bus(i int) *bus.Bus { return tc.nodes[i].bus }

var eventually = bustest.Eventually
