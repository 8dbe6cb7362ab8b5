package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
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
	ReadySock string    `json:"ready_sock,omitempty"`
	ReadyCfg  string    `json:"ready_cfg,omitempty"`
	WithX     bool      `json:"with_x,omitempty"`
	OutputFD  int       `json:"output_fd,omitempty"` // read end of its stdout/stderr pipe

	out *genOutput
}

// reloadRecord is one reload's outcome, kept for status and history.
type reloadRecord struct {
	At       time.Time     `json:"at"`
	Duration time.Duration `json:"duration_ns"`
	OK       bool          `json:"ok"`
	Error    string        `json:"error,omitempty"`
	Gen      int           `json:"gen,omitempty"`
	Trigger  string        `json:"trigger"`
}

const historySize = 10

// persisted is the supervisor state that crosses a re-exec.
type persisted struct {
	HAProxyVersion  string         `json:"haproxy_version"`
	Mode            StartMode      `json:"mode"`
	Gens            []*generation  `json:"gens"`
	NextGen         int            `json:"next_gen"`
	StartedAt       time.Time      `json:"started_at"`
	History         []reloadRecord `json:"history"`
	Reloads         int            `json:"reloads"`
	Pending         bool           `json:"pending"`
	ReloadStarted   time.Time      `json:"reload_started"`
	Trigger         string         `json:"trigger"`
	ControlFD       int            `json:"control_fd"`
	WaiterFDs       []int          `json:"waiter_fds,omitempty"`
	PendingFDs      []int          `json:"pending_fds,omitempty"`
	WrotePIDFile    bool           `json:"wrote_pidfile"`
	NotifyWarned    bool           `json:"notify_warned,omitempty"`
	WroteWrapperPID bool           `json:"wrote_wrapper_pid,omitempty"`
}

// supervisor owns all state; only its loop goroutine touches it. Other
// goroutines post closures to events.
type supervisor struct {
	set  Settings
	inv  Invocation
	bin  string // haproxy binary
	self string // the wrapper's own binary, for re-exec

	st     persisted
	r      *reaper
	exits  chan exitEvent
	events chan func()
	sigs   <-chan os.Signal

	statusKick chan struct{}
	notify     *notifier
	ctl        *controlServer

	checking       bool        // a reload's configuration check is running
	starting       *generation // a generation started, not serving yet
	startCancel    context.CancelFunc
	retriedNoX     bool
	waiters        []net.Conn // wait for the reload in progress
	pendingWaiters []net.Conn // wait for the next reload

	initial    bool     // the first generation is not serving yet
	daemonPipe *os.File // Type=forking: tells the parent the outcome
	stopping   bool
	stopSig    unix.Signal
	exitCode   int // -1 until decided
	lastStatus unix.WaitStatus
	reaped     bool
	done       bool
	stopKill   *time.Timer
}

func newSupervisor(set Settings, inv Invocation, bin, self string) *supervisor {
	exits := make(chan exitEvent, 1024)
	return &supervisor{
		set: set, inv: inv, bin: bin, self: self,
		r:          newReaper(exits),
		exits:      exits,
		events:     make(chan func(), 64),
		notify:     newNotifier(set.NotifySocket),
		exitCode:   -1,
		statusKick: make(chan struct{}, 1),
		st:         persisted{ControlFD: -1},
	}
}

// busy tells whether a start or reload is in progress.
func (s *supervisor) busy() bool { return s.checking || s.starting != nil }

// post runs f on the supervisor loop.
func (s *supervisor) post(f func()) { s.events <- f }

// live returns the generations still running.
func (s *supervisor) serving() *generation {
	for i := len(s.st.Gens) - 1; i >= 0; i-- {
		g := s.st.Gens[i]
		if g.Ready && !g.Draining {
			return g
		}
	}
	return nil
}

func (s *supervisor) findGen(pid int) *generation {
	for _, g := range s.st.Gens {
		if g.Pid == pid {
			return g
		}
	}
	return nil
}

func (s *supervisor) removeGen(g *generation) {
	out := s.st.Gens[:0]
	for _, x := range s.st.Gens {
		if x != g {
			out = append(out, x)
		}
	}
	s.st.Gens = out
	g.removeFiles()
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

// own tells whether pid is a haproxy process of the wrapper: a generation
// leader (an unreaped child: its pid cannot have been reused), or a live
// process whose parent is a leader or the wrapper itself (legacy workers).
func (s *supervisor) own(pid int) bool {
	if s.findGen(pid) != nil {
		return true
	}
	st, pp := procStat(pid)
	return running(st) && (pp == os.Getpid() || s.findGen(pp) != nil)
}

// targets returns every pid to signal for the given generations: leaders,
// and legacy workers that are still the wrapper's own.
func (s *supervisor) targets(gens []*generation) []int {
	var out []int
	seen := map[int]bool{}
	for _, g := range gens {
		pids := append([]int{}, g.Workers...)
		if s.st.Mode == ModeForeground || len(g.Workers) == 0 {
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

func (s *supervisor) signalGens(gens []*generation, sig unix.Signal) {
	for _, p := range s.targets(gens) {
		if err := unix.Kill(p, sig); err != nil && err != unix.ESRCH {
			log.Warningf("send %s to haproxy pid %d: %v", unix.SignalName(sig), p, err)
		}
	}
}

// start runs the first generation: version, configuration check, spawn.
func (s *supervisor) start() error {
	out, ws, err := s.r.runCapture(s.bin, []string{s.bin, "-v"}, childEnv(os.Environ()), 30*time.Second)
	if err != nil {
		return err
	}
	major, minor, full, perr := parseVersion(out)
	if perr != nil {
		return fmt.Errorf("%s -v (%s): %w: set HAPROXY_BIN to a haproxy binary", s.bin, describeStatus(ws), perr)
	}
	s.st.HAProxyVersion = full
	s.st.Mode = modeFor(major, minor)
	s.st.StartedAt = time.Now()
	log.Infof("haproxy %s (%s), start mode %s", full, s.bin, s.st.Mode)
	if err := s.check(); err != nil {
		return err
	}
	s.initial = true
	s.notify.Status("starting haproxy " + full)
	return s.spawnGeneration(false)
}

// configError is a failed configuration check, with haproxy's own words.
type configError struct {
	ws  unix.WaitStatus
	out string
}

func (e *configError) Error() string {
	return fmt.Sprintf("configuration check failed (%s): %s", describeStatus(e.ws), summarizeCheck(e.out))
}

// summarizeCheck keeps haproxy's [ALERT] lines (or the last lines) of a
// check's output, on one line.
func summarizeCheck(out string) string {
	var alerts, all []string
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		all = append(all, l)
		if strings.Contains(l, "[ALERT]") {
			alerts = append(alerts, l)
		}
	}
	pick := alerts
	if len(pick) == 0 {
		pick = all
	}
	if len(pick) > 3 {
		pick = pick[:3]
	}
	msg := strings.Join(pick, " | ")
	if len(msg) > 600 { // keep both ends: a long path must not hide the reason
		msg = msg[:300] + " ... " + msg[len(msg)-300:]
	}
	if msg == "" {
		msg = "no output"
	}
	return msg
}

// check runs "haproxy -c" on the configuration.
func (s *supervisor) check() error {
	argv := append([]string{s.bin}, checkArgs(s.inv)...)
	out, ws, err := s.r.runCapture(s.bin, argv, childEnv(os.Environ()), s.set.StartTimeout)
	if err != nil {
		return err
	}
	if !ws.Exited() || ws.ExitStatus() != 0 {
		return &configError{ws: ws, out: out}
	}
	return nil
}

// readySocketPath and readyConfig: in foreground mode each generation gets an
// extra configuration file declaring a private stats socket; the generation
// serves once haproxy answers "show info" there with its own pid (haproxy
// answers only from its event loop, after binding every listener and telling
// the old pids to stop).
func (s *supervisor) writeReadyConfig(gen int) (sock, cfg string, err error) {
	if err := os.MkdirAll(s.set.RuntimeDir, 0o700); err != nil {
		return "", "", fmt.Errorf("create HAPROXY_WRAPPER_RUNTIME_DIR %s: %w: set it to a writable folder", s.set.RuntimeDir, err)
	}
	sock = filepath.Join(s.set.RuntimeDir, fmt.Sprintf("gen-%d.sock", gen))
	cfg = filepath.Join(s.set.RuntimeDir, fmt.Sprintf("gen-%d.cfg", gen))
	_ = os.Remove(sock)
	text := fmt.Sprintf("# written by haproxy-systemd-wrapper: readiness socket of generation %d\nglobal\n    stats socket %s mode 600 level user\n", gen, sock)
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		return "", "", fmt.Errorf("write %s: %w", cfg, err)
	}
	return sock, cfg, nil
}

// oldPids is the -sf list: every live pid of every generation (not only the
// serving one: a generation still starting or draining must be told too, or
// a quick second reload can leave it serving the old config forever).
func (s *supervisor) oldPids() []int {
	if s.st.Mode == ModeLegacy {
		// haproxy <= 1.7 writes its worker pids to the pid file; keep only
		// those that are the wrapper's own.
		pids, garbage, err := readPIDFile(s.inv.PIDFile)
		if err != nil {
			log.Warningf("%v", err)
		}
		if len(garbage) > 0 {
			log.Warningf("pid file %s holds garbage %q: ignored", s.inv.PIDFile, strings.Join(garbage, " "))
		}
		mine, foreign := filterOwn(pids, s.own)
		if len(foreign) > 0 {
			log.Warningf("pid file %s names pids %v that are not haproxy processes of this wrapper: not signalled", s.inv.PIDFile, foreign)
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

// spawnGeneration starts a new haproxy. reload adds -sf (and -x when the
// stats socket is usable and withX).
func (s *supervisor) spawnGeneration(reload bool) error {
	s.st.NextGen++
	g := &generation{Gen: s.st.NextGen, Started: time.Now()}
	var old []int
	stats := ""
	if reload {
		old = s.oldPids()
		if !s.retriedNoX {
			stats = s.usableStatsSocket()
		}
	}
	g.WithX = stats != "" && len(old) > 0
	files := []uintptr{}
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
	files = append(files, devnull.Fd(), outW.Fd(), outW.Fd())
	env := childEnv(os.Environ())
	var pipeR *os.File
	if s.st.Mode == ModeLegacy {
		r, w, err := os.Pipe()
		if err != nil {
			return err
		}
		defer w.Close()
		pipeR = r
		files = append(files, w.Fd())
		env = setEnv(env, wrapperFDEnv, "3")
	} else {
		g.ReadySock, g.ReadyCfg, err = s.writeReadyConfig(g.Gen)
		if err != nil {
			return err
		}
	}
	argv := append([]string{s.bin}, childArgs(s.st.Mode, s.inv, old, stats, g.ReadyCfg)...)
	pid, err := s.r.spawn(s.bin, argv, env, files, s.exits)
	if err != nil {
		outR.Close()
		if pipeR != nil {
			pipeR.Close()
		}
		s.removeGen(g)
		return err
	}
	g.Pid = pid
	outW.Close()
	g.out = newGenOutput(outR)
	g.OutputFD = g.out.fd
	s.st.Gens = append(s.st.Gens, g)
	s.starting = g
	log.Infof("started haproxy generation %d, pid %d: %s", g.Gen, pid, strings.Join(argv, " "))
	ctx, cancel := context.WithTimeout(context.Background(), s.set.StartTimeout)
	s.startCancel = cancel
	go s.extendWhileStarting(ctx)
	go func() {
		var err error
		if pipeR != nil {
			err = waitPipeClosed(ctx, pipeR)
		} else {
			err = waitAnswers(ctx, g.ReadySock, pid)
		}
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("haproxy pid %d did not serve within %s (HAPROXY_WRAPPER_START_TIMEOUT)", pid, s.set.StartTimeout)
		}
		s.post(func() { s.onReady(g, err) })
	}()
	return nil
}

// extendWhileStarting sends EXTEND_TIMEOUT_USEC= every 5 s while a
// generation is still starting, so that a slow configuration load is not cut
// short by a short TimeoutStartSec=; HAPROXY_WRAPPER_START_TIMEOUT bounds it.
func (s *supervisor) extendWhileStarting(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.notify.ExtendTimeout(10 * time.Second)
		}
	}
}

// usableStatsSocket returns HAPROXY_STATS_SOCKET when it is a socket that can
// be passed to -x; else "" with a warning (haproxy exits when -x names a
// socket that is not there).
func (s *supervisor) usableStatsSocket() string {
	p := s.set.StatsSocket
	if p == "" {
		return ""
	}
	fi, err := os.Stat(p)
	switch {
	case err != nil:
		log.Warningf("HAPROXY_STATS_SOCKET %s: %v: reloading without socket handover (connections may be reset)", p, err)
		return ""
	case fi.Mode()&os.ModeSocket == 0:
		log.Warningf("HAPROXY_STATS_SOCKET %s is not a socket: reloading without socket handover (connections may be reset)", p)
		return ""
	}
	return p
}

// waitAnswers polls a generation's readiness socket until haproxy answers
// "show info" with its own pid.
func waitAnswers(ctx context.Context, sock string, pid int) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		qctx, cancel := context.WithTimeout(ctx, time.Second)
		info, err := showInfo(qctx, sock)
		cancel()
		if err == nil && info.Pid == pid {
			return nil
		}
		if err == nil && info.Pid > 0 && parentOf(info.Pid) == pid {
			return fmt.Errorf("haproxy pid %d runs in master-worker mode (its worker %d answers): remove 'master-worker' from the global section, the wrapper supervises haproxy itself", pid, info.Pid)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// waitPipeClosed waits for haproxy <= 1.7 to close its end of the
// HAPROXY_WRAPPER_FD pipe, which it does once it serves.
func waitPipeClosed(ctx context.Context, r *os.File) error {
	done := make(chan error, 1)
	go func() {
		b := make([]byte, 64)
		for {
			if _, err := r.Read(b); err != nil {
				done <- nil
				return
			}
		}
	}()
	defer r.Close()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *supervisor) onReady(g *generation, err error) {
	if g != s.starting {
		return // already settled (the process exited first)
	}
	if err != nil {
		s.startFailed(g, err.Error())
		_ = unix.Kill(g.Pid, unix.SIGKILL) // our unreaped child: safe
		return
	}
	s.starting = nil
	s.startCancel()
	g.Ready = true
	for _, o := range s.st.Gens {
		if o != g {
			o.Draining = true
		}
	}
	if s.st.Mode == ModeLegacy {
		pids, _, _ := readPIDFile(s.inv.PIDFile)
		g.Workers, _ = filterOwn(pids, s.own)
	} else if err := writePIDFile(s.inv.PIDFile, []int{g.Pid}); err != nil {
		log.Warningf("%v: haproxy serves, only its pid file is missing: create the folder or set PIDFILE to a writable path", err)
	} else {
		s.st.WrotePIDFile = true
	}
	if s.initial {
		s.initial = false
		log.Noticef("haproxy %s serving: generation %d, pid %d, ready in %s", s.st.HAProxyVersion, g.Gen, g.Pid, time.Since(g.Started).Round(time.Millisecond))
		s.notify.Ready(s.report().line(), os.Getpid())
		s.daemonDone("")
		s.kickStatus()
		s.afterReload()
		return
	}
	s.finishReload(true, "")
}

// startFailed settles a generation that did not come up.
func (s *supervisor) startFailed(g *generation, reason string) {
	s.starting = nil
	if s.startCancel != nil {
		s.startCancel()
	}
	if s.initial {
		log.Errorf("haproxy did not start: %s", reason)
		s.daemonDone(reason)
		s.notify.Status("haproxy did not start: " + reason)
		s.stopping = true
		if s.exitCode < 0 {
			s.exitCode = exitStartFailed
		}
		return
	}
	s.finishReload(false, reason)
}

// requestReload asks for a reload; during one, it is coalesced into a single
// further reload.
func (s *supervisor) requestReload(trigger string, waiter net.Conn) {
	if s.stopping {
		log.Infof("reload (%s) ignored: stopping", trigger)
		replyWaiter(waiter, false, "the wrapper is stopping")
		return
	}
	if s.busy() || s.initial {
		if !s.st.Pending {
			log.Infof("reload (%s) queued behind the one in progress", trigger)
		}
		s.st.Pending = true
		if waiter != nil {
			s.pendingWaiters = append(s.pendingWaiters, waiter)
		}
		return
	}
	if waiter != nil {
		s.waiters = append(s.waiters, waiter)
	}
	s.beginReload(trigger)
}

func (s *supervisor) beginReload(trigger string) {
	s.checking = true
	s.retriedNoX = false
	s.st.ReloadStarted = time.Now()
	s.st.Trigger = trigger
	log.Noticef("reloading (%s)", trigger)
	s.notify.Reloading("reloading haproxy (" + trigger + ")")
	go func() {
		err := s.check()
		s.post(func() { s.checkDone(err) })
	}()
}

func (s *supervisor) checkDone(err error) {
	s.checking = false
	if s.stopping {
		s.finishReload(false, "the wrapper is stopping")
		return
	}
	if err != nil {
		s.finishReload(false, err.Error())
		return
	}
	if rerr := s.reexec(); rerr != nil {
		if errors.Is(rerr, errStopping) || s.stopping {
			s.finishReload(false, "the wrapper is stopping")
			return
		}
		log.Warningf("re-exec of %s failed (%v): reloading in-process", s.self, rerr)
	}
	s.spawnReload()
}

func (s *supervisor) spawnReload() {
	if err := s.spawnGeneration(true); err != nil {
		s.finishReload(false, err.Error())
	}
}

// finishReload records a reload's outcome, tells systemd and the waiters, and
// starts the queued reload if any.
func (s *supervisor) finishReload(ok bool, reason string) {
	rec := reloadRecord{At: s.st.ReloadStarted, Duration: time.Since(s.st.ReloadStarted), OK: ok, Error: reason, Trigger: s.st.Trigger}
	if g := s.serving(); g != nil {
		rec.Gen = g.Gen
	}
	s.st.Reloads++
	s.st.History = append(s.st.History, rec)
	if len(s.st.History) > historySize {
		s.st.History = s.st.History[len(s.st.History)-historySize:]
	}
	if ok {
		log.Noticef("reload done: generation %d serving (pid %d) in %s", rec.Gen, s.serving().Pid, rec.Duration.Round(time.Millisecond))
	} else {
		log.Errorf("reload failed, the previous generation keeps serving: %s", reason)
	}
	s.notify.Ready(s.report().line(), os.Getpid())
	for _, w := range s.waiters {
		if ok {
			replyWaiter(w, true, fmt.Sprintf("generation %d serving (pid %d)", rec.Gen, s.serving().Pid))
		} else {
			replyWaiter(w, false, reason)
		}
	}
	s.waiters = nil
	s.kickStatus()
	s.afterReload()
}

// afterReload starts the reload queued meanwhile.
func (s *supervisor) afterReload() {
	if s.st.Pending && !s.stopping && !s.busy() && !s.initial {
		s.st.Pending = false
		s.waiters = s.pendingWaiters
		s.pendingWaiters = nil
		s.beginReload("queued")
	}
}

// onExit handles a reaped process.
func (s *supervisor) onExit(ev exitEvent) {
	s.lastStatus, s.reaped = ev.ws, true
	g := s.findGen(ev.pid)
	if g == nil {
		log.Debugf("reaped pid %d (%s)", ev.pid, describeStatus(ev.ws))
		return
	}
	s.removeGen(g)
	switch {
	case g == s.starting:
		g.out.settle(time.Second)
		out := g.out.text()
		reason := fmt.Sprintf("haproxy generation %d (pid %d) exited during start: %s", g.Gen, g.Pid, describeStatus(ev.ws))
		if strings.TrimSpace(out) != "" {
			reason += ": " + summarizeCheck(out)
		}
		if s.initial {
			s.exitCode = statusCode(ev.ws)
			if s.stopping {
				s.exitCode = stopCode(ev.ws, s.stopSig)
			} else if s.exitCode == 0 {
				s.exitCode = exitStartFailed
			}
			if s.stopping {
				s.starting = nil
				s.startCancel()
				break
			}
			s.startFailed(g, reason)
		} else if g.WithX && !s.stopping && socketTransferFailed(out) {
			log.Warningf("haproxy could not take the listening sockets over HAPROXY_STATS_SOCKET %s (does its 'stats socket' line have 'expose-fd listeners'?): retrying without socket handover, connections may be reset", s.set.StatsSocket)
			s.starting = nil
			s.startCancel()
			s.retriedNoX = true
			s.spawnReload()
		} else {
			s.startFailed(g, reason)
		}
	case g.Ready && !g.Draining && !s.stopping && s.starting == nil:
		code := statusCode(ev.ws)
		log.Errorf("haproxy generation %d (pid %d) died: %s; stopping", g.Gen, g.Pid, describeStatus(ev.ws))
		s.exitCode = code
		if code == 0 {
			s.exitCode = exitStartFailed
		}
		s.beginStop(unix.SIGTERM, "haproxy died: "+describeStatus(ev.ws))
	default:
		log.Infof("haproxy generation %d (pid %d) ended: %s", g.Gen, g.Pid, describeStatus(ev.ws))
		s.kickStatus()
		if s.stopping && s.exitCode < 0 {
			if c := stopCode(ev.ws, s.stopSig); c != 0 {
				s.exitCode = c
			}
		}
	}
	s.maybeDone()
}

// maybeDone ends the loop once stopping and every generation is gone, or
// when no generation is left at all.
func (s *supervisor) maybeDone() {
	if len(s.st.Gens) > 0 || s.starting != nil {
		return
	}
	if !s.stopping {
		// Every haproxy ended on its own (e.g. soft-stopped by hand).
		log.Warningf("no haproxy left running: exiting")
		s.exitCode = statusCode(s.lastStatus)
	}
	s.done = true
}

// beginStop forwards sig to every generation and waits for them.
func (s *supervisor) beginStop(sig unix.Signal, why string) {
	if s.stopping && s.stopSig == sig {
		return
	}
	s.stopping = true
	s.stopSig = sig
	s.st.Pending = false
	log.Noticef("stopping (%s): %s to every haproxy generation", why, unix.SignalName(sig))
	s.notify.Stopping("stopping: " + why)
	for _, w := range append(s.waiters, s.pendingWaiters...) {
		replyWaiter(w, false, "the wrapper is stopping")
	}
	s.waiters, s.pendingWaiters = nil, nil
	if s.initial {
		s.daemonDone("stopped before haproxy was ready")
	}
	s.signalGens(s.st.Gens, sig)
	if s.set.StopTimeout > 0 && s.stopKill == nil {
		s.stopKill = time.AfterFunc(s.set.StopTimeout, func() {
			s.post(func() {
				log.Warningf("haproxy still running %s after the stop: SIGKILL", s.set.StopTimeout)
				s.signalGens(s.st.Gens, unix.SIGKILL)
			})
		})
	}
	s.maybeDone()
}

// onSignal maps a signal to its action (see signalAction).
func (s *supervisor) onSignal(sig unix.Signal) {
	switch signalAction(sig) {
	case actionReload:
		s.requestReload(unix.SignalName(sig), nil)
	case actionStop:
		s.beginStop(sig, unix.SignalName(sig)+" received")
	case actionGracefulStop:
		if s.stopping {
			log.Infof("SIGUSR1 ignored: already stopping")
			return
		}
		s.beginStop(unix.SIGUSR1, "SIGUSR1 received, letting connections finish")
	case actionAbort:
		// systemd's WatchdogSignal= (SIGABRT by default): haproxy hangs.
		// End it at once and exit like a process killed by SIGABRT, without
		// the Go runtime's stack dump.
		log.Errorf("SIGABRT received (systemd watchdog timeout?): SIGKILL to every haproxy generation, exiting")
		s.notify.Stopping("aborted: watchdog timeout")
		s.signalGens(s.st.Gens, unix.SIGKILL)
		s.stopping = true
		s.exitCode = 128 + int(unix.SIGABRT)
		s.done = true
	}
}

type action int

const (
	actionNone action = iota
	actionReload
	actionStop
	actionGracefulStop
	actionAbort
)

// signalAction is the signal table of the README.
func signalAction(sig unix.Signal) action {
	switch sig {
	case unix.SIGUSR2, unix.SIGHUP:
		return actionReload
	case unix.SIGTERM, unix.SIGINT:
		return actionStop
	case unix.SIGUSR1:
		return actionGracefulStop
	case unix.SIGABRT:
		return actionAbort
	}
	return actionNone
}

// cleanup removes what the wrapper created.
func (s *supervisor) cleanup() {
	s.r.killPending()
	// Descendants adopted as subreaper (e.g. workers of a killed haproxy)
	// are the wrapper's own unreaped children: end them, never leave them.
	for _, p := range childrenOf(os.Getpid()) {
		if alive(p) {
			log.Warningf("pid %d (an adopted haproxy descendant) still running at exit: SIGTERM", p)
			_ = unix.Kill(p, unix.SIGTERM)
		}
	}
	if s.st.WrotePIDFile {
		_ = os.Remove(s.inv.PIDFile)
	}
	if s.st.WroteWrapperPID {
		_ = os.Remove(s.set.WrapperPID)
	}
	for _, g := range s.st.Gens { // removeGen would rewrite the slice being ranged
		g.removeFiles()
	}
	if s.ctl != nil {
		s.ctl.close()
	}
}
