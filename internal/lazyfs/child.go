package lazyfs

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
)

// serveEnv, when set in the environment, makes any executable that links
// this package serve a file system instead of running its main: the value
// says which (a childSpec in JSON). Only startChild sets it.
const serveEnv = "LAZYFS_SERVE"

// init turns a process started by startChild into a file system server
// before any main or TestMain runs. Without serveEnv it does nothing.
func init() {
	if spec := os.Getenv(serveEnv); spec != "" {
		// The pipes from and to the parent are its descriptors 3 and 4,
		// so that whatever else the executable prints cannot garble them.
		in, out := os.NewFile(3, "lazyfs-requests"), os.NewFile(4, "lazyfs-replies")
		os.Exit(serveChild(spec, in, out))
	}
}

type childSpec struct {
	Dir              string
	Rule             Rule
	ContinueAfterCut bool
}

// request and reply travel as JSON lines, each on a pipe of its own, one
// reply a request, in order.
type request struct {
	Op      string // cut, arm, state, restart, unmount
	Pattern string `json:",omitempty"`
}

type reply struct {
	Err   string `json:",omitempty"`
	Cut   bool
	Stats Stats
}

// serveChild mounts the file system that spec names and answers requests
// until unmount, or until its input ends (the parent is gone), when it
// unmounts. It returns the exit code.
func serveChild(spec string, in io.Reader, out io.Writer) int {
	// An interrupt meant for the parent (^C, go test's timeout) must not
	// leave a dead mount behind: the parent's end closes our input, and we
	// unmount then.
	signal.Ignore(os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	var sp childSpec
	enc := json.NewEncoder(out)
	if err := json.Unmarshal([]byte(spec), &sp); err != nil {
		enc.Encode(reply{Err: fmt.Sprintf("lazyfs: bad %s: %v", serveEnv, err)})
		return 2
	}
	s, err := newServer(sp.Dir, sp.Rule, sp.ContinueAfterCut)
	if err != nil {
		enc.Encode(reply{Err: err.Error()})
		return 1
	}
	if err := enc.Encode(reply{}); err != nil {
		s.unmount()
		return 1
	}
	dec := json.NewDecoder(in)
	for {
		var req request
		if err := dec.Decode(&req); err != nil {
			s.unmount()
			return 0
		}
		var rep reply
		switch req.Op {
		case "cut":
			s.powerCut()
		case "arm":
			s.arm(req.Pattern)
		case "state":
		case "restart":
			rep.Err = errText(s.restart())
		case "unmount":
			rep.Err = errText(s.unmount())
		default:
			rep.Err = fmt.Sprintf("lazyfs: unknown request %q", req.Op)
		}
		rep.Cut, rep.Stats = s.isCut(), s.snapshot()
		if err := enc.Encode(rep); err != nil || req.Op == "unmount" {
			s.unmount()
			return 0
		}
	}
}

// child is a file system served by a child process: this executable run
// again with serveEnv set. Requests go one at a time.
type child struct {
	dir  string
	mu   sync.Mutex
	cmd  *exec.Cmd
	in   *os.File // requests
	out  *os.File // replies
	enc  *json.Encoder
	dec  *json.Decoder
	last reply // the last reply, for when the child is gone
	done bool
}

// startChild starts the server process and waits until it has mounted.
func startChild(sp childSpec) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("lazyfs: start server: %w", err)
	}
	spec, err := json.Marshal(sp)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	// Under the race detector a process sleeps a second at exit unless
	// told otherwise; the server's exit is waited for by Unmount.
	race := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	cmd.Env = append(os.Environ(), serveEnv+"="+string(spec), "GORACE="+race)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	reqR, in, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("lazyfs: start server: %w", err)
	}
	out, repW, err := os.Pipe()
	if err != nil {
		reqR.Close()
		in.Close()
		return nil, fmt.Errorf("lazyfs: start server: %w", err)
	}
	cmd.ExtraFiles = []*os.File{reqR, repW} // descriptors 3 and 4
	err = cmd.Start()
	reqR.Close() // the child's ends
	repW.Close()
	if err != nil {
		in.Close()
		out.Close()
		return nil, fmt.Errorf("lazyfs: start server: %w", err)
	}
	c := &child{dir: sp.Dir, cmd: cmd, in: in, out: out, enc: json.NewEncoder(in), dec: json.NewDecoder(out)}
	var rep reply
	if err := c.dec.Decode(&rep); err != nil || rep.Err != "" {
		in.Close()
		werr := cmd.Wait()
		out.Close()
		if err == nil {
			return nil, textErr(rep.Err)
		}
		return nil, fmt.Errorf("lazyfs: server process: %v (%v)", err, werr)
	}
	return c, nil
}

// call sends req and returns the reply; a child that is gone answers with
// an error and the last state it reported.
func (c *child) call(req request) reply {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.callLocked(req)
}

func (c *child) callLocked(req request) reply {
	if c.done {
		rep := c.last
		rep.Err = ErrUnmounted.Error()
		return rep
	}
	var rep reply
	if err := c.enc.Encode(req); err != nil {
		rep = c.last
		rep.Err = fmt.Sprintf("lazyfs: server process: %v", err)
		return rep
	}
	if err := c.dec.Decode(&rep); err != nil {
		rep = c.last
		rep.Err = fmt.Sprintf("lazyfs: server process: %v", err)
		return rep
	}
	c.last = rep
	return rep
}

func (c *child) powerCut()          { c.call(request{Op: "cut"}) }
func (c *child) arm(pattern string) { c.call(request{Op: "arm", Pattern: pattern}) }
func (c *child) isCut() bool        { return c.call(request{Op: "state"}).Cut }
func (c *child) snapshot() Stats    { return c.call(request{Op: "state"}).Stats }
func (c *child) restart() error     { return textErr(c.call(request{Op: "restart"}).Err) }

// unmount asks the child to unmount and waits for it to exit. If the child
// died without unmounting, its dead mount is detached here, so that the
// directory can be removed.
func (c *child) unmount() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done {
		return nil
	}
	rep := c.callLocked(request{Op: "unmount"})
	c.done = true
	c.in.Close()
	werr := c.cmd.Wait()
	c.out.Close()
	if werr != nil {
		if err := detach(c.dir); err != nil {
			werr = errors.Join(werr, err)
		}
	}
	if err := textErr(rep.Err); err != nil {
		return errors.Join(err, werr)
	}
	if werr != nil {
		return fmt.Errorf("lazyfs: server process: %w", werr)
	}
	return nil
}
