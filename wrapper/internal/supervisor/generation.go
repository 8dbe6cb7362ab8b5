package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"haproxy-systemd-wrapper/wrapper/internal/haproxy"
	"haproxy-systemd-wrapper/wrapper/internal/logx"
	"haproxy-systemd-wrapper/wrapper/internal/proc"
)

// generation is one haproxy started by the wrapper: the process it started
// (the "leader", its own child) and, for haproxy <= 1.7 in -Ds mode, the
// worker pids haproxy wrote to its pid file.
type generation struct {
	Gen       int       `json:"gen"`
	Pid       int       `json:"pid"`
	Workers   []int     `json:"workers,omitempty"`
	Started   time.Time `json:"started"`
	Ready     bool      `json:"ready"`
	Draining  bool      `json:"draining"`
	DrainFrom time.Time `json:"drain_from,omitzero"`
	ReadySock string    `json:"ready_sock,omitempty"`
	ReadyCfg  string    `json:"ready_cfg,omitempty"`
	WithX     bool      `json:"with_x,omitempty"`
	XSock     string    `json:"x_sock,omitempty"`   // where its -x pointed
	Retiring  bool      `json:"retiring,omitempty"` // got SIGTERM from a drain limit

	out     *haproxy.Output
	cancel  context.CancelFunc // ends the readiness wait
	failure error              // why the wrapper killed it during its start
	stopSig unix.Signal        // the stop signal it was sent
}

// removeFiles removes the generation's readiness socket and configuration.
func (g *generation) removeFiles() {
	if g.ReadySock != "" {
		_ = os.Remove(g.ReadySock)
	}
	if g.ReadyCfg != "" {
		_ = os.Remove(g.ReadyCfg)
	}
}

func (s *Supervisor) findGen(pid int) *generation {
	for _, g := range s.st.Gens {
		if g.Pid == pid {
			return g
		}
	}
	return nil
}

func (s *Supervisor) removeGen(g *generation) {
	out := s.st.Gens[:0]
	for _, x := range s.st.Gens {
		if x != g {
			out = append(out, x)
		}
	}
	s.st.Gens = out
	if g.cancel != nil {
		g.cancel()
	}
	g.removeFiles()
}

// serving is the generation that serves, or nil.
func (s *Supervisor) serving() *generation {
	for i := len(s.st.Gens) - 1; i >= 0; i-- {
		g := s.st.Gens[i]
		if g.Ready && !g.Draining {
			return g
		}
	}
	return nil
}

// own tells whether pid is a haproxy process of the wrapper: a generation
// leader (an unreaped child: its pid cannot have been reused), or a live
// process whose parent is a leader or the wrapper itself (legacy workers).
func (s *Supervisor) own(pid int) bool {
	if s.findGen(pid) != nil {
		return true
	}
	st, pp := proc.Stat(pid)
	return proc.Running(st) && (pp == os.Getpid() || s.findGen(pp) != nil)
}

// targets returns every pid to signal for the given generations: leaders,
// and legacy workers that are still the wrapper's own.
func (s *Supervisor) targets(gens []*generation) []int {
	var out []int
	seen := map[int]bool{}
	for _, g := range gens {
		pids := append([]int{}, g.Workers...)
		if s.st.Mode == haproxy.ModeForeground || len(g.Workers) == 0 {
			pids = append(pids, g.Pid)
		}
		for _, p := range pids {
			if !seen[p] && s.own(p) {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	return out
}

func (s *Supervisor) signalGens(gens []*generation, sig unix.Signal) {
	for _, p := range s.targets(gens) {
		if err := unix.Kill(p, sig); err != nil && err != unix.ESRCH {
			logx.Warningf("send %s to haproxy pid %d: %v", unix.SignalName(sig), p, err)
		}
	}
}

// oldPids is the -sf list: every live pid of every generation (not only the
// serving one: a generation still starting or draining must be told too, or
// a quick second reload can leave it serving the old config forever).
func (s *Supervisor) oldPids() []int {
	if s.st.Mode == haproxy.ModeLegacy {
		// haproxy <= 1.7 writes its worker pids to the pid file; keep only
		// those that are the wrapper's own.
		pids, garbage, err := proc.ReadPIDFile(s.cfg.Inv.PIDFile)
		if err != nil {
			logx.Warningf("%v", err)
		}
		if len(garbage) > 0 {
			logx.Warningf("pid file %s holds garbage %q: ignored", s.cfg.Inv.PIDFile, strings.Join(garbage, " "))
		}
		mine, foreign := proc.FilterOwn(pids, s.own)
		if len(foreign) > 0 {
			logx.Warningf("pid file %s names pids %v that are not haproxy processes of this wrapper: not signalled", s.cfg.Inv.PIDFile, foreign)
		}
		seen := map[int]bool{}
		for _, p := range mine {
			seen[p] = true
		}
		for _, p := range s.targets(s.st.Gens) {
			if !seen[p] {
				mine = append(mine, p)
			}
		}
		return mine
	}
	return s.targets(s.st.Gens)
}

// usableStatsSocket returns HAPROXY_STATS_SOCKET when it is a socket that can
// be passed to -x; else "" with a warning (haproxy exits when -x names a
// socket that is not there).
func (s *Supervisor) usableStatsSocket() string {
	p := s.cfg.Settings.StatsSocket
	if p == "" {
		return ""
	}
	fi, err := os.Stat(p)
	switch {
	case err != nil:
		logx.Warningf("HAPROXY_STATS_SOCKET %s: %v: reloading without socket handover (connections may be reset)", p, err)
		return ""
	case fi.Mode()&os.ModeSocket == 0:
		logx.Warningf("HAPROXY_STATS_SOCKET %s is not a socket: reloading without socket handover (connections may be reset)", p)
		return ""
	}
	return p
}

// spawn starts a new haproxy generation; on a reload it gets -sf (and -x
// when the stats socket is usable and noX is false). Its readiness is
// awaited by a helper that posts evReady.
func (s *Supervisor) spawn(reload, noX bool) error {
	s.st.NextGen++
	g := &generation{Gen: s.st.NextGen, Started: time.Now()}
	var old []int
	xs := ""
	if reload {
		old = s.oldPids()
	}
	if !noX {
		xs = s.xSocket(reload)
	}
	g.WithX, g.XSock = xs != "", xs
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return err
	}
	defer devnull.Close()
	outR, outW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer outW.Close()
	files := []*os.File{devnull, outW, outW}
	env := proc.ChildEnv(os.Environ())
	var pipeR *os.File
	if s.st.Mode == haproxy.ModeLegacy {
		if !s.st.NoPipe {
			r, w, err := os.Pipe()
			if err != nil {
				outR.Close()
				return err
			}
			defer w.Close()
			pipeR = r
			files = append(files, w)
			env = proc.SetEnv(env, proc.EnvWrapperFD, "3")
		}
	} else {
		if err := os.MkdirAll(s.cfg.Settings.RuntimeDir, 0o700); err != nil {
			outR.Close()
			return fmt.Errorf("create HAPROXY_WRAPPER_RUNTIME_DIR %s: %w: set it to a writable folder", s.cfg.Settings.RuntimeDir, err)
		}
		g.ReadySock, g.ReadyCfg, err = haproxy.WriteReadyConfig(s.cfg.Settings.RuntimeDir, g.Gen)
		if err != nil {
			outR.Close()
			return err
		}
	}
	argv := append([]string{s.cfg.Bin}, haproxy.ChildArgs(s.st.Mode, s.cfg.Inv, old, xs, g.ReadyCfg)...)
	pid, err := s.r.Spawn(s.cfg.Bin, argv, env, files, s.exits)
	if err != nil {
		outR.Close()
		if pipeR != nil {
			pipeR.Close()
		}
		g.removeFiles()
		return err
	}
	g.Pid = pid
	g.out = haproxy.NewOutput(outR)
	s.st.Gens = append(s.st.Gens, g)
	s.starting = g
	logx.Infof("started haproxy generation %d, pid %d: %s", g.Gen, pid, strings.Join(argv, " "))
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Settings.StartTimeout)
	g.cancel = cancel
	legacy, pidFile := s.st.Mode == haproxy.ModeLegacy, s.cfg.Inv.PIDFile
	s.helper(func() event {
		var err error
		switch {
		case legacy:
			// haproxy <= 1.7: the pipe closes once it started, but also
			// when it exits (1.5.19, 1.7): started means its pid file
			// names its live processes too (1.5.0-1.5.18 and 1.6 have
			// only that).
			if pipeR != nil {
				err = haproxy.WaitPipeClosed(ctx, pipeR)
			}
			if err == nil {
				_, err = haproxy.WaitPIDFileReady(ctx, pidFile, pid)
			}
		default:
			err = haproxy.WaitAnswers(ctx, g.ReadySock, pid)
		}
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("haproxy pid %d did not serve within %s (HAPROXY_WRAPPER_START_TIMEOUT)", pid, s.cfg.Settings.StartTimeout)
		}
		return event{kind: evReadyResult, gen: g, err: err}
	})
	return nil
}

// configError is a failed configuration check, with haproxy's own words.
type configError struct {
	ws  unix.WaitStatus
	out string
}

func (e *configError) Error() string {
	return fmt.Sprintf("configuration check failed (%s): %s", proc.DescribeStatus(e.ws), haproxy.SummarizeCheck(e.out))
}

// check runs "haproxy -c" on the configuration; ctx ends it.
func (s *Supervisor) check(ctx context.Context) error {
	argv := append([]string{s.cfg.Bin}, haproxy.CheckArgs(s.cfg.Inv)...)
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Settings.StartTimeout)
	defer cancel()
	out, ws, err := s.r.RunCapture(ctx, s.cfg.Bin, argv, proc.ChildEnv(os.Environ()))
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("configuration check did not finish within %s (HAPROXY_WRAPPER_START_TIMEOUT)", s.cfg.Settings.StartTimeout)
		}
		return err
	}
	if !ws.Exited() || ws.ExitStatus() != 0 {
		return &configError{ws: ws, out: out}
	}
	return nil
}

// enforceDrainLimits ends the oldest draining generations past
// HAPROXY_WRAPPER_MAX_DRAINING, and those draining for longer than
// HAPROXY_WRAPPER_MAX_DRAIN_AGE, with SIGTERM: a reload storm must not grow
// without bound.
func (s *Supervisor) enforceDrainLimits(now time.Time) {
	var draining []*generation
	for _, g := range s.st.Gens { // in start order: oldest first
		if g.Draining && !g.Retiring {
			draining = append(draining, g)
		}
	}
	excess := len(draining) - s.cfg.Settings.MaxDraining
	for i, g := range draining {
		why := ""
		switch age := s.cfg.Settings.MaxDrainAge; {
		case i < excess:
			why = fmt.Sprintf("more than %d generations draining (HAPROXY_WRAPPER_MAX_DRAINING)", s.cfg.Settings.MaxDraining)
		case age > 0 && !g.DrainFrom.IsZero() && now.Sub(g.DrainFrom) >= age:
			why = fmt.Sprintf("draining for more than %s (HAPROXY_WRAPPER_MAX_DRAIN_AGE)", age)
		default:
			continue
		}
		g.Retiring = true
		s.st.Retired++
		logx.Warningf("haproxy generation %d (pid %d) retired with SIGTERM: %s", g.Gen, g.Pid, why)
		s.signalGens([]*generation{g}, unix.SIGTERM)
	}
}
