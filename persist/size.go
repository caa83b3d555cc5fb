package persist

import (
	"os"
	"path/filepath"
	"sync"
	"time"
)

// sizeEvery is how long a measurement of the directory's size stands.
const sizeEvery = time.Second

// dirSize measures, at most once per sizeEvery, the space Badger's files
// take in the store's directory: tables and memtable logs (the LSM, where
// records under a MiB are), and value logs. Badger's own Size reads
// metrics the store turns off, so it always said 0.
type dirSize struct {
	mu       sync.Mutex
	at       time.Time
	lsm, log int64
}

func (d *dirSize) get(dir string) (lsm, log int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if now := time.Now(); now.Sub(d.at) >= sizeEvery {
		d.lsm, d.log = measure(dir)
		d.at = now
	}
	return d.lsm, d.log
}

func measure(dir string) (lsm, log int64) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, 0
	}
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil || !fi.Mode().IsRegular() {
			continue // removed meanwhile
		}
		switch filepath.Ext(e.Name()) {
		case ".sst", ".mem":
			lsm += allocated(fi)
		case ".vlog":
			log += allocated(fi)
		}
	}
	return lsm, log
}
