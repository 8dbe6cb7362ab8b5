package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"haproxy-systemd-wrapper/wrapper/internal/control"
	"haproxy-systemd-wrapper/wrapper/internal/haproxy"
	"haproxy-systemd-wrapper/wrapper/internal/logx"
	"haproxy-systemd-wrapper/wrapper/internal/proc"
	"haproxy-systemd-wrapper/wrapper/internal/status"
)

// A reload: RELOADING=1 and the configuration, once at rest, checked by a
// helper (beginReload), then the new generation (spawn: haproxy's argv,
// its readiness awaited by a helper), and its outcome told to systemd and
// to the waiting clients (reloadSettled). The first start and a respawn
// take the same steps (start.go, respawn.go); the new generation's taking
// over is in takeover.go.
//
// A helper is a goroutine that does one step of a start or a reload that
// takes time (haproxy -v, the check, the readiness wait, the wait for old
// generations to stop listening, the new binary's probe) and posts one
// event on s.events; it is counted in s.helpers before it starts, and the
// loop waits for every one.

// The triggers of a beginReload that no operator asked for (a reload's is
// what asked for it: SIGUSR2, SIGHUP, "reload command", "queued").
const (
	triggerStart   = "first start" // the first start (start.go)
	triggerRespawn = "respawn"     // a generation in place of a dead one (respawn.go)
)

// queueReload remembers one more reload behind the one in progress
// (coalesced); its client waits for the next one.
func (s *Supervisor) queueReload(why string, req *control.Request) {
	if !s.st.Pending {
		logx.Infof("reload (%s) queued behind the one in progress", why)
	}
	s.st.Pending = true
	if req != nil {
		s.pendingWaiters = append(s.pendingWaiters, req)
	}
}

// beginReload begins the way to a new generation. A reload (trigger: the
// signal or the reload command; req, when the command asked, waits for the
// outcome) says RELOADING=1 first; a respawn (triggerRespawn) said its
// own, and both record when and why the reload began. The first start
// (triggerStart) only checks. Then a helper waits
// for the configuration to be at rest (not on the first start: nothing to
// lose) and checks it, unless HAPROXY_WRAPPER_CHECK_CONFIG is off; its
// event is decided already: EvCheckPassed, or EvStartFailed with haproxy's
// words. A stop cancels the helper (its context): then it posts
// evCancelled, which means nothing any more.
func (s *Supervisor) beginReload(trigger string, req *control.Request) {
	var paths []string
	if trigger != triggerStart {
		paths = configPaths(s.cfg.Inv.Args)
		s.noX = false
		s.st.ReloadStarted = time.Now()
		s.st.Trigger = trigger
	}
	if trigger != triggerStart && trigger != triggerRespawn {
		if req != nil {
			s.waiters = append(s.waiters, req)
		}
		logx.Noticef("reloading (%s)", trigger)
		s.notify.Reloading("reloading haproxy (" + trigger + ")")
	}
	hctx, check := s.helperCtx, s.cfg.Settings.CheckConfig
	s.helpers++
	go func() {
		if waited := waitAtRest(hctx, paths, time.Now); waited > 0 {
			logx.Infof("the configuration changed %s ago or less: waited %s for it to be at rest", atRestQuiet, waited.Round(time.Millisecond))
		}
		var err error
		if check && hctx.Err() == nil {
			err = s.check(hctx)
		}
		switch {
		case hctx.Err() != nil:
			s.events <- event{kind: evCancelled}
		case err != nil:
			s.events <- event{kind: evDecided, decided: follow{EvStartFailed, failed(err)}}
		default:
			s.events <- event{kind: evDecided, decided: follow{EvCheckPassed, evCtx{}}}
		}
	}()
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

// startExitCode maps a start error to the exit code of the README.
func startExitCode(err error) int {
	var se *proc.SpawnError
	if errors.As(err, &se) {
		return se.ExitCode()
	}
	var ce *configError
	if errors.As(err, &ce) {
		if c := proc.StatusCode(ce.ws); c != 0 {
			return c
		}
	}
	return proc.ExitStartFailed
}

// failed is the context of EvStartFailed for err: its exit code counts
// for a first start only (ActStartFailed).
func failed(err error) evCtx {
	return evCtx{reason: err.Error(), code: startExitCode(err)}
}

// spawn starts the new haproxy generation of a first start (phase
// Starting) or of a reload (phase Reloading: it gets -sf, and -x unless
// noX; systemd's start timeout is extended while it starts). haproxy's argv
// is haproxy.ChildArgs'. Its readiness is awaited by a helper that posts
// evReadyResult. In another phase it does nothing.
func (s *Supervisor) spawn() error {
	reload := s.phase == Reloading
	if !reload && s.phase != Starting {
		return nil
	}
	noX := s.noX
	s.st.NextGen++
	g := &generation{Gen: s.st.NextGen, Started: time.Now(), Reload: reload}
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
	if reload {
		logx.Debugf("generation %d spawned %s after the reload began", g.Gen, time.Since(s.st.ReloadStarted).Round(10*time.Microsecond))
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Settings.StartTimeout)
	g.cancel = cancel
	legacy, pidFile := s.st.Mode == haproxy.ModeLegacy, s.cfg.Inv.PIDFile
	s.helpers++
	go func() {
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
		s.events <- event{kind: evReadyResult, gen: g, err: err}
	}()
	if reload {
		s.startExtend()
	}
	return nil
}

func (s *Supervisor) startExtend() {
	if s.extend == nil {
		s.extend = time.NewTicker(5 * time.Second)
	}
}

func (s *Supervisor) stopExtend() {
	if s.extend != nil {
		s.extend.Stop()
		s.extend = nil
	}
}

// reloadSettled records a reload's outcome, tells systemd and the waiters.
// When it failed and nothing serves any more, it hands back EvServingDied.
func (s *Supervisor) reloadSettled(ok bool, reason string, g *generation) *follow {
	rec := status.ReloadRecord{At: s.st.ReloadStarted, Duration: time.Since(s.st.ReloadStarted), OK: ok, Error: reason, Trigger: s.st.Trigger}
	if sv := s.serving(); sv != nil {
		rec.Gen = sv.Gen
	}
	s.st.Reloads++
	if !ok {
		s.st.ReloadsFailed++
	}
	s.st.History = append(s.st.History, rec)
	if len(s.st.History) > historySize {
		s.st.History = s.st.History[len(s.st.History)-historySize:]
	}
	sv := s.serving()
	switch {
	case ok:
		logx.Noticef("reload done: generation %d serving (pid %d) in %s", g.Gen, g.Pid, rec.Duration.Round(time.Millisecond))
	case sv != nil && !s.lostServing:
		logx.Errorf("reload failed, generation %d (pid %d) keeps serving: %s", sv.Gen, sv.Pid, reason)
	default:
		logx.Errorf("reload failed: %s", reason)
	}
	s.notify.Ready(s.report().Line(), os.Getpid())
	for _, w := range s.waiters {
		if ok {
			w.Answer(true, fmt.Sprintf("generation %d serving (pid %d)", g.Gen, g.Pid))
		} else {
			w.Answer(false, reason)
		}
	}
	s.waiters = nil
	s.kickStatus()
	if !ok && sv == nil && s.phase != Stopping {
		return &follow{EvServingDied, evCtx{reason: "the serving generation died during the reload", ws: s.lastFailed}}
	}
	return nil
}
