package persist

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// runningName is a file that exists in a store's directory while a store
// has it open: it names the mode and the boot of the machine it was opened
// in. Close removes it, so finding it at Open means the last run stopped
// without closing (a crash of the process, of the kernel, or a power cut).
//
// A buffered store acknowledges what a power cut or kernel crash may take
// back, and its subscribers may have seen it. If the last run was buffered
// and the machine has booted since, records may have been lost and their
// sequence numbers would be given again under the same epoch; Open gives
// every topic a new epoch instead, so a client holding a position learns
// that history went back (recovered: false) rather than silently getting
// other records under numbers it has seen. A crash of the process alone
// loses nothing of a buffered store: its log is a shared memory map that
// the kernel still writes out.
const runningName = "RUNNING"

// lastRun is what Open found of the previous run.
type lastRun struct {
	unclean  bool   // it did not close
	buffered bool   // it ran buffered
	boot     string // the boot it ran in; "" when unknown
}

func readLastRun(dir string) (lastRun, error) {
	b, err := os.ReadFile(filepath.Join(dir, runningName))
	if errors.Is(err, fs.ErrNotExist) {
		return lastRun{}, nil
	}
	if err != nil {
		return lastRun{}, err
	}
	mode, boot, _ := strings.Cut(strings.TrimSpace(string(b)), " ")
	// A file the crash left empty or torn: take the worst case.
	return lastRun{unclean: true, buffered: mode != "synced", boot: boot}, nil
}

// mayHaveLost reports whether records the last run acknowledged may be
// gone: it ran buffered, did not close, and the machine booted since (or
// either boot is unknown).
func (r lastRun) mayHaveLost(boot string) bool {
	return r.unclean && r.buffered && (r.boot == "" || boot == "" || r.boot != boot)
}

// markRunning writes the running file for this run and makes it durable
// before anything is acknowledged.
func markRunning(dir string, cfg *config) error {
	mode := "synced"
	if cfg.buffered {
		mode = "buffered"
	}
	if err := writeSynced(filepath.Join(dir, runningName), fmt.Appendf(nil, "%s %s\n", mode, cfg.boot())); err != nil {
		return err
	}
	return syncDir(dir)
}

// clearRunning removes the running file at a clean Close.
func clearRunning(dir string) error {
	if err := os.Remove(filepath.Join(dir, runningName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return syncDir(dir)
}

// bootID names this boot of the machine (Linux's boot_id); "" when unknown.
func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// syncLogs fsyncs every memtable log and value log in dir: what a run that
// did not close left in them may still be only in the page cache, and this
// run's acknowledgements must not outlive it (a later record durable, an
// earlier one not).
func syncLogs(dir string) error {
	for _, pat := range []string{"*.mem", "*.vlog"} {
		names, err := filepath.Glob(filepath.Join(dir, pat))
		if err != nil {
			return err
		}
		for _, name := range names {
			if err := syncFile(name); err != nil {
				return err
			}
		}
	}
	return nil
}
