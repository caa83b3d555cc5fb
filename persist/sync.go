package persist

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// What a power cut keeps is what was fsync'd: a file's data by the file's
// fsync, a new file's name by its directory's fsync (POSIX; ext4's journal
// happens to commit names with any fsync, other file systems need not).
// Badger's DB.Sync syncs the memtable log and then the value log, and
// Badger creates files (a value log on every open, a memtable log on
// rotation, a table on a memtable flush) without syncing their directory.
// A synced store therefore adds, before it acknowledges a batch:
//
//   - the value logs' data before the memtable log's, when the batch put
//     values there (records of a MiB and more; smaller ones stay in the
//     memtable log with their keys), so that no durable key points at value
//     bytes that are not;
//   - the directory, whenever a name was created in it since its last sync,
//     so that every file holding acknowledged data can be found again.
//
// A table a memtable flush creates is listed in Badger's (synced) MANIFEST
// before its name is synced; a cut in between is repaired at open (see
// repairManifest): the memtable log it came from is still there then.

// durability holds what the store needs to make its directory durable.
type durability struct {
	mu    sync.Mutex // serializes syncs: the writer's and value-log GC's
	dir   string
	d     *os.File // the directory, open for fsync
	watch *dirWatch
}

// openDurability starts watching dir for new names and then syncs it, so
// that every name made before is durable and every later one is seen.
func openDurability(dir string) (*durability, error) {
	w, err := watchDir(dir)
	if err != nil {
		return nil, fmt.Errorf("watch directory: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		w.close()
		return nil, err
	}
	if err := d.Sync(); err != nil {
		w.close()
		d.Close()
		return nil, fmt.Errorf("sync directory: %w", err)
	}
	return &durability{dir: dir, d: d, watch: w}, nil
}

func (du *durability) close() error {
	err := du.watch.close()
	if cerr := du.d.Close(); err == nil {
		err = cerr
	}
	return err
}

// sync makes what s has committed survive a power cut: the value logs first
// when vlog is set, then Badger's logs, then the directory if a name was
// created in it since its last sync.
func (s *Store) sync(vlog bool) error {
	du := s.dur
	du.mu.Lock()
	defer du.mu.Unlock()
	if vlog {
		if err := syncValueLogs(du.dir); err != nil {
			return err
		}
	}
	if err := s.db.Sync(); err != nil {
		return err
	}
	if f := s.failSync.Swap(nil); f != nil {
		if err := (*f)(); err != nil {
			return err
		}
	}
	if du.watch.changed() {
		if err := du.d.Sync(); err != nil {
			return fmt.Errorf("sync directory: %w", err)
		}
	}
	return nil
}

// syncValueLogs fsyncs the two newest value log files: the one being
// written and the one before it, which a rotation may have left with
// unsynced bytes. (An fsync writes back pages dirtied through Badger's
// memory mapping as well as written ones.)
func syncValueLogs(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var fids []int
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".vlog")
		if !ok {
			continue
		}
		if fid, err := strconv.Atoi(name); err == nil {
			fids = append(fids, fid)
		}
	}
	slices.Sort(fids)
	for _, fid := range fids[max(0, len(fids)-2):] {
		if err := syncFile(filepath.Join(dir, fmt.Sprintf("%06d.vlog", fid))); err != nil {
			return err
		}
	}
	return nil
}

// syncFile fsyncs the file name. A file that is gone is not an error: Badger
// deletes a log once what it held is elsewhere (a flushed table, a value
// log rewritten by GC), and the deletion may come between the listing and
// the open.
func syncFile(name string) error {
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
