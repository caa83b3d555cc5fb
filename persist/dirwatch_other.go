//go:build !linux

package persist

// dirWatch without inotify: every synced commit syncs the directory too.
type dirWatch struct{}

func watchDir(string) (*dirWatch, error) { return &dirWatch{}, nil }

func (*dirWatch) changed() bool { return true }

func (*dirWatch) close() error { return nil }
