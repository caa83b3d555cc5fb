//go:build !linux

package lazyfs

import "errors"

// errNotLinux says why lazyfs cannot run here: it unmounts lazily and
// aborts FUSE connections through Linux's interfaces.
var errNotLinux = errors.New("lazyfs: needs Linux")

func platform() error                       { return errNotLinux }
func connNumber(dir string) (uint32, error) { return 0, errNotLinux }
func detach(dir string) error               { return errNotLinux }
func (m *mount) unmount() error             { return errNotLinux }
