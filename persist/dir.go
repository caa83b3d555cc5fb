package persist

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// markerName is the file that makes a directory a Courier store. Open
// creates it in an empty directory and refuses a non-empty one without it,
// so a wrong path never gets Badger's files sprinkled into it.
const markerName = "COURIER"

// markerText is the marker's content: the store's on-disk format.
const markerText = "courier-store 1\n"

// prepareDir makes sure dir is a Courier store (creating it when dir is
// missing or empty) and returns its marker file, held open and locked until
// the store closes.
func prepareDir(dir string) (*os.File, error) {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	case !fi.IsDir():
		return nil, fmt.Errorf("%w: %s is not a directory", ErrNotStore, dir)
	}
	marker := filepath.Join(dir, markerName)
	f, err := os.Open(marker)
	if errors.Is(err, fs.ErrNotExist) {
		if err := checkEmpty(dir); err != nil {
			return nil, err
		}
		if err := writeMarker(dir, marker); err != nil {
			return nil, err
		}
		f, err = os.Open(marker)
	}
	if err != nil {
		return nil, err
	}
	if err := lockFile(f); err != nil {
		f.Close()
		return nil, err
	}
	// Read the marker under the lock: a concurrent creator has finished.
	text, err := io.ReadAll(io.LimitReader(f, 256))
	if err == nil && len(text) > 0 && string(text) != markerText {
		err = fmt.Errorf("%w: marker %s holds %q, want %q", ErrNotStore, marker, strings.TrimSpace(string(text)), strings.TrimSpace(markerText))
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	// An empty marker is one whose creation a crash cut short: the
	// directory was empty then, so it is ours.
	if len(text) == 0 {
		if err := writeMarker(dir, marker); err != nil {
			f.Close()
			return nil, err
		}
	}
	return f, nil
}

func checkEmpty(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	names, err := d.Readdirnames(1)
	if err != nil && err != io.EOF {
		return err
	}
	if len(names) > 0 {
		return fmt.Errorf("%w: %s is not empty and has no %s file", ErrNotStore, dir, markerName)
	}
	return nil
}

// writeMarker writes the marker and syncs it and the directory, so that a
// store never exists on disk without its marker.
func writeMarker(dir, marker string) error {
	if err := writeSynced(marker, []byte(markerText)); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// dropEmptyLogs removes the zero-byte memtable logs (*.mem) and value logs
// (*.vlog) that a crash between creating one and its first write leaves
// behind. Badger refuses to open a directory holding one (its Open fails
// with "Create a new file"; badger issue 2207), though such a file holds
// nothing: a cleanly closed value log keeps at least its header, and no key
// can point into a file nothing was written to. Removing it loses no record.
func dropEmptyLogs(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if ext := filepath.Ext(e.Name()); e.IsDir() || ext != ".mem" && ext != ".vlog" {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return err
		}
		if fi.Size() == 0 {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}

// writeSynced writes data to the file name, replacing what it held, and
// fsyncs it.
func writeSynced(name string, data []byte) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
