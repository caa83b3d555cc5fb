package bench

import "fmt"

// Sync settings of the NATS servers in the sync-cost scenario.
const (
	DefaultSync = "default sync" // JetStream's default: an fsync every two minutes
	SyncAlways  = "sync always"  // sync_interval: always, an fsync per write
)

// SyncSpreads returns the sync-cost scenario's cases: C → A from 1 and
// from 8 publishers.
func SyncSpreads() []Spread {
	return []Spread{{"C → A, 1 publisher", 1, []int{0}}, {"C → A, 8 publishers", 8, []int{0}}}
}

// ClusterProcs is the cluster on nats-server processes whose servers sync
// as sync says (DefaultSync or SyncAlways), started with
// [StartClusterProcs]: the implementations of the sync-cost scenario,
// DefaultSync its baseline.
func ClusterProcs(sync string) Spreader {
	return Spreader{
		Name:     fmt.Sprintf("cluster R%d, %s", ClusterReplicas, sync),
		Baseline: sync == DefaultSync,
		Note: fmt.Sprintf("%d buses in the report's process, each a cluster.Node on its own server of a %d-server NATS cluster "+
			"run as nats-server processes (JetStream file storage, %d replicas, %s); publishers on node C, subscribers on their nodes",
			ClusterNodes, ClusterNodes, ClusterReplicas, sync),
		Open: func(cl *Cluster, _ string, sp Spread) (SpreadFlow, error) {
			if cl == nil {
				return nil, fmt.Errorf("bench: %s needs a running cluster", sync)
			}
			topic := fmt.Sprintf("bench.cluster.t%d", cl.topics.Add(1))
			return newSpreadFlow(sp, cl.buses, topic, func() error { return nil })
		},
	}
}
