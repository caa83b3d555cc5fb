package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Metrics are one run's figures by name, e.g. "msgs/s", "cpu-ns/msg".
type Metrics map[string]float64

// Metric names used across scenarios.
const (
	MsgsPerSec   = "msgs/s"     // delivered messages per second, wall time
	CPUPerMsg    = "cpu-ns/msg" // CPU time (of the measured process) per delivered message
	AllocsPerMsg = "allocs/msg" // heap allocations per delivered message
	Delivered    = "delivered"  // messages delivered in the run
	Published    = "published"  // messages published in the run
)

// CPUTime returns the calling process's user+system CPU time.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// mallocs returns the number of heap allocations so far.
func mallocs() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.Mallocs
}

// Measure runs run, which returns how many messages were delivered, and
// reports delivered msgs/s (wall), CPU ns and allocations per delivered
// message. The CPU and allocation figures are the whole process's, so
// nothing else should run meanwhile.
func Measure(run func() (delivered int64, err error)) (Metrics, error) {
	runtime.GC()
	a0 := mallocs()
	c0, t0 := CPUTime(), time.Now()
	n, err := run()
	wall, cpu := time.Since(t0), CPUTime()-c0
	a1 := mallocs()
	if err != nil {
		return nil, err
	}
	if n <= 0 {
		return nil, fmt.Errorf("bench: nothing delivered in %v", wall)
	}
	return Metrics{
		MsgsPerSec:   float64(n) / wall.Seconds(),
		CPUPerMsg:    float64(cpu.Nanoseconds()) / float64(n),
		AllocsPerMsg: float64(a1-a0) / float64(n),
		Delivered:    float64(n),
	}, nil
}

// Summary is the median, minimum and maximum of a figure over runs.
type Summary struct {
	Median, Min, Max float64
	N                int
}

// Summarize returns the summary of vs (NaN-free); N is 0 for none.
func Summarize(vs []float64) Summary {
	if len(vs) == 0 {
		return Summary{}
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return Summary{Median: med, Min: s[0], Max: s[len(s)-1], N: len(s)}
}

// Percentile returns the p-th percentile (0..100) of vs by nearest rank.
func Percentile(vs []float64, p float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	i := int(p/100*float64(len(s)) + 0.5)
	if i < 1 {
		i = 1
	}
	if i > len(s) {
		i = len(s)
	}
	return s[i-1]
}

// Machine describes where the figures were measured.
type Machine struct {
	CPU    string // model name from /proc/cpuinfo
	Cores  int    // runtime.NumCPU
	Go     string // runtime.Version
	OS     string // GOOS/GOARCH and kernel release
	Memory string // MemTotal
}

// ThisMachine reads the machine's description.
func ThisMachine() Machine {
	m := Machine{Cores: runtime.NumCPU(), Go: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.OS += ", Linux " + strings.TrimSpace(string(b))
	}
	if kb := procStatusKiB("/proc/meminfo", "MemTotal"); kb > 0 {
		m.Memory = fmt.Sprintf("%.0f GiB", float64(kb)/(1<<20))
	}
	return m
}

// RSS returns the resident set of process pid (0: this process) in bytes,
// or -1.
func RSS(pid int) int64 {
	path := "/proc/self/status"
	if pid != 0 {
		path = fmt.Sprintf("/proc/%d/status", pid)
	}
	kb := procStatusKiB(path, "VmRSS")
	if kb < 0 {
		return -1
	}
	return kb << 10
}

// procStatusKiB returns a "Field: N kB" line's N from a /proc file, or -1.
func procStatusKiB(path, field string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err == nil {
				return n
			}
		}
	}
	return -1
}

// ProcCPU returns the user+system CPU time of process pid from
// /proc/<pid>/stat (clock-tick resolution, 10 ms), or -1.
func ProcCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	// The command name in parentheses may hold spaces: fields follow the
	// last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return -1
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64) // field 14: utime
	st, err2 := strconv.ParseInt(f[12], 10, 64) // field 15: stime
	if err1 != nil || err2 != nil {
		return -1
	}
	const hz = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / hz
}

// RaiseFileLimit raises the soft limit of open files to the hard limit, so
// that thousands of sockets fit in one process. It returns the new limit.
func RaiseFileLimit() (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			return 0, err
		}
	}
	return rl.Cur, nil
}

// ProcWrites returns the number of write system calls process pid has
// made (syscw in /proc/<pid>/io), or -1.
func ProcWrites(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return -1
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "syscw:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(rest), 10, 64)
			if err == nil {
				return n
			}
		}
	}
	return -1
}
