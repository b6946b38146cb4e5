package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTicks is Linux's USER_HZ, the unit of /proc CPU times (100 on every
// architecture Go supports).
const clockTicks = 100

// cpuSample is the CPU time used so far, per process group of interest,
// and by the whole machine.
type cpuSample struct {
	at      time.Time
	procs   map[string]float64 // seconds, by group
	busy    float64            // machine-wide busy seconds
	idle    float64            // machine-wide idle seconds
	present bool
}

// CPU is where a phase's CPU time went, in cores (CPU seconds per second of
// the phase): 1.0 is one core busy throughout. "other" is everything else on
// the machine (other users' processes, the kernel's own threads).
type CPU struct {
	Cores map[string]float64 `json:"cores"`
	Idle  float64            `json:"idle_cores"`
}

// sampleCPU reads /proc. Postgres backends serving the benchmark database
// count as "postgres"; other Postgres processes (the WAL writer, other
// databases' backends) as "postgres (shared)". Processes that exit within a
// phase (a closed connection's backend) lose their time, which is why the
// pools' connection churn is reported separately.
func (st *stack) sampleCPU() cpuSample {
	s := cpuSample{at: time.Now(), procs: map[string]float64{}}
	stat, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s
	}
	line, _, _ := strings.Cut(string(stat), "\n")
	f := strings.Fields(line)
	for i := 1; i < len(f); i++ {
		v, _ := strconv.ParseFloat(f[i], 64)
		if i == 4 || i == 5 { // idle, iowait
			s.idle += v / clockTicks
		} else if i <= 8 { // user nice system idle iowait irq softirq steal
			s.busy += v / clockTicks
		}
	}
	s.present = true
	groups := map[int]string{os.Getpid(): "bench + simulator"}
	for _, name := range []string{"web", "worker"} {
		if pid := st.pid(name); pid != 0 {
			groups[pid] = name
		}
	}
	if p := st.baselinePid; p != 0 {
		groups[p] = "baseline"
	}
	if st.redis != nil {
		if pid := st.redis.Pid(); pid != 0 {
			groups[pid] = "redis"
		}
	}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		b, err := os.ReadFile(d + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ... utime stime: fields 14 and 15, counted
		// after the closing parenthesis of comm (which may hold spaces).
		end := bytes.LastIndexByte(b, ')')
		if end < 0 {
			continue
		}
		comm := string(b[bytes.IndexByte(b, '(')+1 : end])
		rest := strings.Fields(string(b[end+1:]))
		if len(rest) < 13 {
			continue
		}
		ut, _ := strconv.ParseFloat(rest[11], 64)
		stt, _ := strconv.ParseFloat(rest[12], 64)
		secs := (ut + stt) / clockTicks
		g, ok := groups[pid]
		if !ok {
			switch {
			case comm == "postgres":
				cmd, _ := os.ReadFile(d + "/cmdline")
				g = "postgres (shared)"
				if st.database != nil && bytes.Contains(cmd, []byte(st.database.Name)) {
					g = "postgres"
				}
			default:
				g = "other"
			}
		}
		s.procs[g] += secs
	}
	return s
}

// cpuBetween is where CPU went between two samples. "other" is the
// machine's busy time not accounted to a named group (including the time of
// processes that exited meanwhile).
func cpuBetween(a, b cpuSample) CPU {
	out := CPU{Cores: map[string]float64{}}
	wall := b.at.Sub(a.at).Seconds()
	if !a.present || !b.present || wall <= 0 {
		return out
	}
	named := 0.0
	for g, v := range b.procs {
		if g == "other" {
			continue
		}
		d := v - a.procs[g]
		if d < 0 {
			d = 0 // a process restarted in between; its new time is not comparable
		}
		if d > 0 {
			out.Cores[g] = d / wall
			named += d
		}
	}
	other := (b.busy - a.busy) - named
	if other > 0 {
		out.Cores["other"] = other / wall
	}
	out.Idle = (b.idle - a.idle) / wall
	return out
}

// cpuGroups is the order groups are printed in.
var cpuGroups = []string{"web", "worker", "baseline", "postgres", "postgres (shared)", "redis", "bench + simulator", "other"}
