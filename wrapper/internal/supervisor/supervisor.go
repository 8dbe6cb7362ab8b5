package supervisor

import (
	"context"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"haproxy-systemd-wrapper/wrapper/internal/control"
	"haproxy-systemd-wrapper/wrapper/internal/haproxy"
	"haproxy-systemd-wrapper/wrapper/internal/listeners"
	"haproxy-systemd-wrapper/wrapper/internal/logx"
	"haproxy-systemd-wrapper/wrapper/internal/proc"
	"haproxy-systemd-wrapper/wrapper/internal/sdnotify"
	"haproxy-systemd-wrapper/wrapper/internal/settings"
	"haproxy-systemd-wrapper/wrapper/internal/status"
)

// Config is what main hands the supervisor.
type Config struct {
	Settings   settings.Settings
	Inv        haproxy.Invocation
	Bin        string          // haproxy binary
	Self       string          // the wrapper's own binary, for an upgrade
	Argv       []string        // the wrapper's argv, for an upgrade
	Signals    chan os.Signal  // the handled signals, caught since the image started
	DaemonPipe *os.File        // -D: the pipe to the waiting parent
	Control    *control.Server // the control socket (nil: unavailable)
	Lock       *os.File        // the runtime folder's lock, held for life
	Version    string          // the wrapper's version
	// Holder keeps the listening sockets and serves them to -x (nil:
	// unavailable; reloads then take them from the serving generation).
	Holder *listeners.Holder
	// Inherited are the sockets systemd passed (LISTEN_FDS): held from the
	// start, handed to the first generation.
	Inherited []listeners.Socket
}

// state is what crosses an upgrade (see handoff).
type state struct {
	HAProxyVersion  string                `json:"haproxy_version"`
	Mode            haproxy.StartMode     `json:"mode"`
	NoPipe          bool                  `json:"no_pipe"` // haproxy 1.5.0-1.5.18, 1.6: readiness by the pid file only
	Gens            []*generation         `json:"gens"`
	NextGen         int                   `json:"next_gen"`
	StartedAt       time.Time             `json:"started_at"`
	History         []status.ReloadRecord `json:"history"`
	Reloads         int                   `json:"reloads"`
	ReloadsFailed   int                   `json:"reloads_failed"`
	Pending         bool                  `json:"pending"`
	ReloadStarted   time.Time             `json:"reload_started"`
	Trigger         string                `json:"trigger"`
	WrotePIDFile    bool                  `json:"wrote_pidfile"`
	WroteWrapperPID bool                  `json:"wrote_wrapper_pid"`
	NotifyWarned    bool                  `json:"notify_warned"`
	Retired         int                   `json:"retired"`
	Respawns        int                   `json:"respawns"`
	RespawnTimes    []time.Time           `json:"respawn_times,omitempty"` // in the last minute (HAPROXY_WRAPPER_RESPAWN_LIMIT)
	Held            []heldMeta            `json:"held,omitempty"`          // the held sockets, in the order of the hand-over's files
}

// heldMeta is what an upgrade carries of a held socket besides its
// descriptor.
type heldMeta struct {
	NS     string `json:"ns,omitempty"`
	Iface  string `json:"iface,omitempty"`
	Opts   uint32 `json:"opts,omitempty"`
	Stored string `json:"stored,omitempty"` // its name in systemd's store
}

const historySize = 10

// helper results.
type eventKind int

const (
	evDecided   eventKind = iota // an Event already (the configuration check's): step hands it to handle
	evCancelled                  // a helper that a stop cancelled: nothing to do
	evReadyResult
	evProbeResult
	evOldStopped
	evVersion
	evSockets // a serving generation's listening sockets, taken
)

type event struct {
	kind    eventKind
	decided follow // evDecided: the Event and its context
	gen     *generation
	err     error
	text    string             // evVersion: haproxy's version
	mode    haproxy.StartMode  // evVersion: the start mode it implies
	socks   []listeners.Socket // evSockets
}

// Supervisor runs haproxy generations.
type Supervisor struct {
	cfg    Config
	phase  Phase
	st     state
	r      *proc.Reaper
	exits  chan proc.Exit
	events chan event
	notify *sdnotify.Notifier
	ctl    *control.Server

	// helpers counts the helper goroutines whose event is not handled yet:
	// each one is started as "s.helpers++" then "go func() { s.events <- ... }()"
	// (TestHelpersCounted checks it), and step counts it back.
	helpers    int
	helperCtx  context.Context
	helperStop context.CancelFunc

	snapReqs chan chan status.Report
	bg       sync.WaitGroup // status and watchdog goroutines

	starting       *generation // a generation started, not serving yet
	noX            bool        // this reload retries without -x
	waiters        []*control.Request
	pendingWaiters []*control.Request
	lastFailed     unix.WaitStatus // exit status of the last generation that failed to start
	lostServing    bool            // the serving generation died during a reload

	stopSig   unix.Signal
	exitCode  int // -1 until decided
	stopKill  *time.Timer
	extend    *time.Ticker
	statusKck chan struct{}
	image     imageID
	drainTick *time.Ticker // checks HAPROXY_WRAPPER_MAX_DRAIN_AGE

	holder     *listeners.Holder
	stored     map[uint64]string // held socket inode -> its name in systemd's store
	crashWS    unix.WaitStatus   // how the generation a respawn replaces ended
	graceTimer *time.Timer       // HAPROXY_WRAPPER_STOP_GRACE
	graceSig   unix.Signal
	forking    bool         // the -D daemon (Type=forking): see restoreAll
	restore    *time.Ticker // forking: the store is sent again a few times
	restores   int
}

// New returns a supervisor for a first start.
func New(cfg Config) *Supervisor {
	s := &Supervisor{
		cfg:       cfg,
		r:         proc.NewReaper(),
		exits:     make(chan proc.Exit, 1024),
		events:    make(chan event, 64),
		notify:    sdnotify.New(cfg.Settings.NotifySocket),
		snapReqs:  make(chan chan status.Report),
		exitCode:  -1,
		statusKck: make(chan struct{}, 1),
		image:     runningImage(),
	}
	s.helperCtx, s.helperStop = context.WithCancel(context.Background())
	s.ctl = cfg.Control
	s.holder = cfg.Holder
	s.stored = map[uint64]string{}
	s.forking = cfg.DaemonPipe != nil
	if s.holder != nil && len(cfg.Inherited) > 0 {
		added := s.holder.Add(cfg.Inherited)
		names := make([]string, len(added))
		for i, a := range added {
			names[i] = a.Describe()
			if listeners.IsStoreName(a.Name) {
				// In systemd's store already: removed from it when no
				// bind line uses it any more.
				s.stored[a.Ino()] = a.Name
			}
		}
		logx.Infof("holding %d listening socket(s) passed by systemd, for the first generation: %s", len(added), strings.Join(names, ", "))
	} else {
		listeners.CloseAll(cfg.Inherited)
	}
	return s
}

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
	Reload    bool      `json:"reload,omitempty"`   // started by a reload or a respawn, not the first start

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

// evCtx carries what an action needs to know of its event.
type evCtx struct {
	gen    *generation
	reason string
	code   int // exit code for a failed first start
	ws     unix.WaitStatus
	sig    unix.Signal
	req    *control.Request
	why    string
	// requested: the stop was asked for by a signal (SIGTERM, SIGINT,
	// SIGUSR1), not decided by the wrapper (haproxy died, did not start).
	requested bool
}

// follow is an event that a stage's function hands back for the loop to
// handle next (loop.go's then): only the loop calls handle.
type follow struct {
	ev Event
	c  evCtx
}

// imageID identifies a binary file: device and inode.
type imageID struct {
	Dev uint64 `json:"dev"`
	Ino uint64 `json:"ino"`
}

// runningImage is the file this image was executed from (it stays reachable
// through /proc/self/exe even when removed).
func runningImage() imageID {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/exe", &st); err != nil {
		return imageID{}
	}
	return imageID{Dev: st.Dev, Ino: st.Ino}
}
