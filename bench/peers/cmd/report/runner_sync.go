package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/courierbus/courier/bench/internal/bench"
)

// scSync is the sync-cost scenario: the cluster with its NATS servers at
// JetStream's default sync and with sync always, in the same rounds.
const scSync = "syncost"

// planSync adds one round of the sync-cost scenario: both clusters started
// for the round (not measured), then every case on each, the default
// first, then both stopped.
func (r *runner) planSync(round int, tag string, sz sizes) {
	res := r.res
	syncs := []string{bench.DefaultSync, bench.SyncAlways}
	cls := map[string]*bench.Cluster{}
	dir := func(sync string) string { return filepath.Join(r.tmp, fmt.Sprintf("syncost-%d-%d", round, len(sync))) }
	for _, sync := range syncs {
		r.add(fmt.Sprintf("sync cost: start %d nats-server processes and buses, R%d, %s (not measured) %s",
			bench.ClusterNodes, bench.ClusterReplicas, sync, tag), func() error {
			d := dir(sync)
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
			cl, err := bench.StartClusterProcs(d, sync == bench.SyncAlways)
			cls[sync] = cl
			return err
		})
	}
	for _, sp := range bench.SyncSpreads() {
		for _, sync := range syncs {
			im := bench.ClusterProcs(sync)
			k := key{scSync, sp.Name, im.Name}
			res.notes[im.Name] = im.Note
			if im.Baseline {
				res.baseline[scSync+"/"+sp.Name] = im.Name
			}
			r.add(fmt.Sprintf("sync cost %s %s %s", sp.Name, im.Name, tag), func() error {
				m, err := runSpread(im, cls[sync], "", sp, sz)
				res.add(k, round, m, err)
				if err != nil {
					return err
				}
				return described(fmt.Sprintf("%s msgs/s, p50 %.0f µs, p99 %.0f µs", human(m[bench.MsgsPerSec]), m[bench.P50Us], m[bench.P99Us]))
			})
		}
	}
	r.add("sync cost: stop "+tag, func() error {
		var errs []error
		for _, sync := range syncs {
			if cl := cls[sync]; cl != nil {
				errs = append(errs, cl.Close())
			}
			errs = append(errs, os.RemoveAll(dir(sync)))
		}
		return errors.Join(errs...)
	})
}
