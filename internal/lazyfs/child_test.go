//go:build linux

package lazyfs

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Some tests run an operation in a child process: the test binary run again
// with childEnv set to the operation and its arguments in childArgs. With
// InProcess the server runs in the test process, which must then not touch
// a mapping of the mount: such tests map files in a child.
const (
	childEnv  = "LAZYFS_TEST_CHILD"
	childArgs = "LAZYFS_TEST_CHILD_ARGS"
)

// runChild performs the operation a parent test asked for and exits: 0 on
// success, 1 with the error on stderr.
func runChild(op string) {
	args := strings.Split(os.Getenv(childArgs), "\n")
	var err error
	switch op {
	case "mmap":
		err = mapAndWrite(args)
	case "writer":
		err = childWriter(args)
	default:
		err = fmt.Errorf("unknown child operation %q", op)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// child runs the test binary as a child performing op with args.
func childCmd(op string, args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+op, childArgs+"="+strings.Join(args, "\n"),
		"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	return cmd
}

// runChildOp runs op in a child and fails the test if it fails.
func runChildOp(t *testing.T, op string, args ...string) {
	t.Helper()
	out, err := childCmd(op, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("child %s %q: %v: %s", op, args, err, out)
	}
}

// mapAndWrite: path size sync off... — creates path with size bytes, fsyncs
// it, maps it shared and writable, writes "hello" at each off, and msyncs
// the mapping when sync is "true".
func mapAndWrite(args []string) error {
	if len(args) < 3 {
		return fmt.Errorf("mmap: want path size sync off..., got %q", args)
	}
	size, err := strconv.Atoi(args[1])
	if err != nil {
		return err
	}
	fd, err := os.OpenFile(args[0], os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer fd.Close()
	if err := fd.Truncate(int64(size)); err != nil {
		return err
	}
	if err := fd.Sync(); err != nil { // the size is durable, the content not yet
		return err
	}
	m, err := unix.Mmap(int(fd.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return err
	}
	defer unix.Munmap(m)
	for _, a := range args[3:] {
		off, err := strconv.Atoi(a)
		if err != nil {
			return err
		}
		copy(m[off:], "hello")
	}
	if args[2] == "true" {
		return unix.Msync(m, unix.MS_SYNC)
	}
	return nil
}

// childWriter: dir — writes and fsyncs "synced" (and its directory), then
// appends to it and creates "unsynced" without syncing, prints "ready" and
// waits for its stdin to close (it is killed first).
func childWriter(args []string) error {
	dir := args[0]
	fd, err := os.Create(filepath.Join(dir, "synced"))
	if err != nil {
		return err
	}
	if _, err := fd.WriteString("synced data"); err != nil {
		return err
	}
	if err := fd.Sync(); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		return err
	}
	if _, err := fd.WriteString(" and more"); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "unsynced"), []byte("gone"), 0o644); err != nil {
		return err
	}
	fmt.Println("ready")
	_, err = io.Copy(io.Discard, os.Stdin)
	return err
}

func TestChildKilledThenCut(t *testing.T) {
	eachServer(t, func(t *testing.T, opts ...Option) {
		f := Mount(t, "", RulePOSIX, opts...)
		d := f.Dir()
		cmd := childCmd("writer", d)
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		defer stdin.Close()
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if line != "ready\n" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("child: got %q, %v; want ready", line, err)
		}
		want(t, d, "synced", []byte("synced data and more"))
		want(t, d, "unsynced", []byte("gone"))
		if err := cmd.Process.Signal(unix.SIGKILL); err != nil {
			t.Fatal(err)
		}
		cmd.Wait() // killed: its error says so
		restart(t, f)
		want(t, d, "synced", []byte("synced data"))
		want(t, d, "unsynced", nil)
	})
}
