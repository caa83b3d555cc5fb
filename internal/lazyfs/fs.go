package lazyfs

import (
	"errors"
	"fmt"
	"path"
)

// Rule says which fsyncs make namespace operations (create, mkdir, unlink,
// rmdir, rename) durable.
type Rule int

const (
	// RulePOSIX makes a directory's entries durable only when that
	// directory is fsync'd (FSYNCDIR). This is all POSIX promises.
	RulePOSIX Rule = iota
	// RuleExt4 makes every pending namespace operation of the whole file
	// system durable on any fsync of a file or a directory, as ext4's
	// journal (data=ordered) does. Other files' data still needs their own
	// fsync.
	RuleExt4
)

// String returns "posix" or "ext4".
func (r Rule) String() string {
	switch r {
	case RulePOSIX:
		return "posix"
	case RuleExt4:
		return "ext4"
	}
	return fmt.Sprintf("Rule(%d)", int(r))
}

// ErrUnmounted is returned by Restart after Unmount.
var ErrUnmounted = errors.New("lazyfs: unmounted")

// Stats counts what the file system did. Counters run over the life of the
// FS; DroppedPages, DroppedFiles and RestoredNames describe the last Restart.
type Stats struct {
	Fsyncs    uint64 // successful FSYNCs of regular files
	Fsyncdirs uint64 // successful FSYNCDIRs (and FSYNCs) of directories
	Writes    uint64 // successful WRITE requests
	Cuts      uint64 // power cuts, by Cut, CutAfterSync or Restart
	Restarts  uint64 // successful Restarts
	Refused   uint64 // requests answered EIO: after a cut, or through a mount that Restart replaced

	// FsyncsAfterCut counts fsyncs that succeeded after a cut without making
	// anything durable (ContinueAfterCut).
	FsyncsAfterCut uint64

	DroppedPages  uint64 // pages written and not fsync'd, undone by the last Restart
	DroppedFiles  uint64 // files and directories that had a name only in the current view
	RestoredNames uint64 // durable names that the current view had removed or pointed elsewhere
}

// FS is a mounted lazyfs: an in-memory FUSE file system that loses, at a
// power cut, whatever was not fsync'd. Its methods are safe for concurrent
// use.
type FS struct {
	dir  string
	rule Rule
	b    backend
}

// backend is where the file system is served: this process (server) or a
// child process (child).
type backend interface {
	powerCut()
	arm(pattern string)
	isCut() bool
	snapshot() Stats
	restart() error
	unmount() error
}

// Option configures New and Mount.
type Option interface{ apply(*config) }

type config struct {
	inProcess bool
	goOn      bool
}

type inProcess struct{}

func (inProcess) apply(c *config) { c.inProcess = true }

// InProcess serves the file system from the calling process instead of a
// child process. Start-up is quicker, but the calling process must then
// never touch a memory mapping of a file on the mount (see the package doc):
// a page fault there hangs the process. By default a child process serves.
func InProcess() Option { return inProcess{} }

type continueAfterCut struct{}

func (continueAfterCut) apply(c *config) { c.goOn = true }

// ContinueAfterCut makes requests after a cut keep succeeding against the
// current view, while nothing more becomes durable: an fsync returns success
// and does nothing. By default they fail with EIO. Use it for a program that
// cannot stop cleanly once its I/O fails (Badger's Close retries a failed
// memtable flush for ever), so that it can Close before Restart; results it
// reports after the cut (an fsync'd write) are not durable. A result that the
// program reported before IsCut returned false was durable.
func ContinueAfterCut() Option { return continueAfterCut{} }

// New mounts an empty file system at dir, which must exist. By default a
// child process (this executable run again) serves it until Unmount; see
// [InProcess]. Tests should use [Mount], which skips the test when FUSE is
// unusable and unmounts at the end.
func New(dir string, rule Rule, opts ...Option) (*FS, error) {
	var c config
	for _, o := range opts {
		o.apply(&c)
	}
	if rule != RulePOSIX && rule != RuleExt4 {
		return nil, fmt.Errorf("lazyfs: unknown rule %d", int(rule))
	}
	if err := platform(); err != nil {
		return nil, err
	}
	var (
		b   backend
		err error
	)
	if c.inProcess {
		b, err = newServer(dir, rule, c.goOn)
	} else {
		b, err = startChild(childSpec{Dir: dir, Rule: rule, ContinueAfterCut: c.goOn})
	}
	if err != nil {
		return nil, err
	}
	return &FS{dir: dir, rule: rule, b: b}, nil
}

// Dir returns the mount point.
func (f *FS) Dir() string { return f.dir }

// Rule returns the rule the file system was mounted with.
func (f *FS) Rule() Rule { return f.rule }

// Cut cuts the power now: the durable state is frozen, and every later
// request fails with EIO (reads the kernel answers from its page cache
// excepted; see also ContinueAfterCut) until Restart. Cutting twice is the
// same as cutting once.
func (f *FS) Cut() { f.b.powerCut() }

// CutAfterSync arms a cut that happens right after the next successful fsync
// of a file, or fsync of a directory, whose base name matches pattern (see
// [path.Match]). That fsync itself succeeds and its effect is durable;
// nothing after it becomes durable, and requests fail with EIO (see
// ContinueAfterCut). A later call replaces the pattern;
// Cut and Restart disarm it. It panics if pattern is malformed.
func (f *FS) CutAfterSync(pattern string) {
	if _, err := path.Match(pattern, ""); err != nil {
		panic(fmt.Sprintf("lazyfs: CutAfterSync(%q): %v", pattern, err))
	}
	f.b.arm(pattern)
}

// IsCut reports whether the power is cut (by Cut or an armed CutAfterSync)
// and the file system not restarted since.
func (f *FS) IsCut() bool { return f.b.isCut() }

// Stats returns a snapshot of the counters.
func (f *FS) Stats() Stats { return f.b.snapshot() }

// Restart brings the file system back after a power cut, cutting first if
// the power is still on: it unmounts (lazily when the mount is busy,
// aborting the connection so that processes still using the old mount get
// errors and the old server ends), replaces every current view by its
// durable view, and mounts again at the same directory. Processes that used
// the old mount should have been killed, and mappings of its files
// abandoned; descriptors still open on it keep failing.
func (f *FS) Restart() error { return f.b.restart() }

// Unmount unmounts the file system (lazily if busy) and waits for its
// server to end. Later calls return nil; the content is lost, and Restart
// returns ErrUnmounted.
func (f *FS) Unmount() error { return f.b.unmount() }

// errText carries an error across the pipe to a child server.
func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func textErr(s string) error {
	switch s {
	case "":
		return nil
	case ErrUnmounted.Error():
		return ErrUnmounted
	}
	return errors.New(s)
}
