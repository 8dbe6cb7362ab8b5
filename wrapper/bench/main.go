// Command bench measures haproxy reloads on loopback only, for contenders
// run one after the other in the same run, at several configuration sizes:
//
//	A        haproxy-systemd-wrapper (-x from the sockets it holds), with HAPROXY_WRAPPER_VERSION_CACHE as the units set it
//	A+check  the same with HAPROXY_WRAPPER_CHECK=true (haproxy -c before each start and reload)
//	B        haproxy-systemd-wrapper without HAPROXY_STATS_SOCKET (not run by default; since the wrapper serves -x itself, the same as A)
//	C        haproxy's own master-worker mode, "haproxy -W -f cfg"
//	R        the physical limit: bare "haproxy -db -x admin.sock -sf <old pids>" from a minimal loop (raw.go)
//
// Sizes (BENCH_SIZES or -sizes, default 0,1000,10000,50000,map): N backends
// with one server each on an unused loopback port and no health checks, or
// "map": one frontend rule using map() over a generated 200,000-line map.
// For each size and contender, in its own process group and temporary
// folder: start (launch -> first 200), paced reloads by SIGUSR2 under a steady
// load (reload latency: signal -> a new haproxy pid answers; failed
// requests), back-to-back reloads under the same load (reloads per second),
// supervisor peak RSS, stop. Then a keep-alive section: 200 keep-alive
// clients across 20 reloads, for A and C, with and without "option
// idle-close-on-response". Tables on stdout, a CSV and an SVG chart in -out.
//
//	go run ./wrapper/bench -wrapper build/haproxy-systemd-wrapper [-sizes 0,1000]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"haproxy-systemd-wrapper/wrapper/internal/testutil"
)

// params are the run's knobs, all from flags (and BENCH_SIZES).
type params struct {
	wrapper, haproxy string
	sizesFlag        string
	sizes            []size
	reloads, b2b     int // -1: per size
	interval         time.Duration
	idle             time.Duration
	workers          int
	keepAlive        int
	kaClients        int
	kaReloads        int
	maxDuration      time.Duration
	only             string
	keepDirs         bool
	out              string
	versionCache     string // HAPROXY_WRAPPER_VERSION_CACHE of A and A+check (setup)
}

// Bounds of the measurements (not flags: they belong to the definitions).
const (
	probeEvery    = 2 * time.Millisecond  // poll period of the "new pid" probe
	probeTimeout  = time.Second           // one probe request
	stopBound     = 30 * time.Second      // SIGTERM -> exit, then SIGKILL
	drainBound    = 12 * time.Second      // old generations gone after the load (hard-stop-after 10s + margin)
	loadTimeout   = 2 * time.Second       // one load request
	rssSampleTick = 20 * time.Millisecond // VmHWM resets on exec: sample it all the time
	clockTicks    = 100                   // USER_HZ on Linux
)

type contender struct {
	key, title string
	wrapper    bool // false: haproxy -W (or the raw loop)
	raw        bool // the raw loop
	handover   bool // HAPROXY_STATS_SOCKET set
	check      bool // HAPROXY_WRAPPER_CHECK=true
}

// contenders, selected by -only with their keys (K is A+check).
var contenders = []contender{
	{key: "A", title: "A", wrapper: true, handover: true},
	{key: "K", title: "A+check", wrapper: true, handover: true, check: true},
	{key: "B", title: "B (no -x)", wrapper: true},
	{key: "C", title: "C: haproxy -W"},
	{key: "R", title: "R: raw -x -sf", raw: true},
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == rawLoopArg {
		os.Exit(rawLoop(os.Args[2:]))
	}
	var p params
	flag.StringVar(&p.wrapper, "wrapper", "build/haproxy-systemd-wrapper", "the wrapper binary")
	flag.StringVar(&p.haproxy, "haproxy", "/usr/sbin/haproxy", "the haproxy binary")
	flag.StringVar(&p.sizesFlag, "sizes", "", "configuration sizes: backends counts and map (200,000-entry map) or mapN; default $BENCH_SIZES or "+defaultSizes)
	flag.IntVar(&p.reloads, "reloads", -1, "paced reloads per size and contender (-1: per size, 20/12/8/4 for 0/1k/10k/50k backends, 8 for the map)")
	flag.IntVar(&p.b2b, "b2b", -1, "back-to-back reloads per size and contender (-1: per size, 10/8/4/3, 4 for the map)")
	flag.DurationVar(&p.interval, "interval", 200*time.Millisecond, "pause between the end of one paced reload (new pid seen) and the next signal")
	flag.DurationVar(&p.idle, "idle", 0, "idle period for a supervisor CPU measurement (no load, no reloads); 0: none")
	flag.IntVar(&p.workers, "load-workers", 16, "load clients opening a new connection per request")
	flag.IntVar(&p.keepAlive, "keepalive", 4, "load clients reusing one keep-alive connection (Go http.Client)")
	flag.IntVar(&p.kaClients, "ka-clients", 200, "keep-alive section: raw keep-alive clients (0: no keep-alive section)")
	flag.IntVar(&p.kaReloads, "ka-reloads", 20, "keep-alive section: reloads")
	flag.DurationVar(&p.maxDuration, "max-duration", 20*time.Minute, "bound of the whole run")
	flag.StringVar(&p.only, "only", "AKCR", "contenders to run: letters of A, K (A+check), B (no HAPROXY_STATS_SOCKET), C (haproxy -W), R (raw haproxy -x -sf loop)")
	flag.BoolVar(&p.keepDirs, "keep", false, "keep the temporary folders (configs, logs) and print their paths")
	flag.StringVar(&p.out, "out", "build/bench", "folder for bench.csv, keepalive.csv and bench.svg")
	flag.Parse()
	if err := setup(&p); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	interrupted = ctx
	ctx, cancel := context.WithTimeout(ctx, p.maxDuration)
	defer cancel()

	began := time.Now()
	fmt.Print(machineHeader(p))
	// A restart of a unit finds the version cache filled: so does A.
	if err := warmVersionCache(ctx, p); err != nil {
		fmt.Fprintf(os.Stderr, "bench: warming the version cache: %v\n", err)
	}
	var run []contender
	for _, c := range contenders {
		if strings.Contains(strings.ToUpper(p.only), c.key) {
			run = append(run, c)
		}
	}

	// The size matrix.
	var rows []row
	for _, s := range p.sizes {
		paced, b2b := s.reloadCounts(p)
		for _, c := range run {
			j := job{c: c, s: s, paced: paced, b2b: b2b, interval: p.interval, bound: s.readyBound(), workers: p.workers, keepAlive: p.keepAlive, idle: p.idle}
			rows = append(rows, row{c: c, s: s, r: runJob(ctx, p, j)})
		}
	}

	// The keep-alive section: A and C, with and without idle-close-on-response.
	var kaRows []row
	if p.kaClients > 0 {
		for _, idleClose := range []bool{false, true} {
			for _, c := range run {
				if c.check || c.raw {
					continue // the same generations as A, or no keep-alive care: nothing to add
				}
				j := job{c: c, s: size{name: "0"}, paced: p.kaReloads, interval: p.interval, bound: size{}.readyBound(), kaClients: p.kaClients, idleClose: idleClose}
				kaRows = append(kaRows, row{c: c, s: j.s, idleClose: idleClose, r: runJob(ctx, p, j)})
			}
		}
	}

	printReport(os.Stdout, p, rows, kaRows)
	files, err := writeFiles(p, rows, kaRows)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
	}
	fmt.Println()
	for _, f := range files {
		fmt.Println("wrote", f)
	}
	fmt.Printf("wall time: %s\n", time.Since(began).Round(time.Second))
}

// runJob runs one job unless the run ended, with progress on stderr.
func runJob(ctx context.Context, p params, j job) result {
	what := fmt.Sprintf("%s, %s", j.c.title, j.s.label())
	if j.kaClients > 0 {
		what = fmt.Sprintf("%s, keep-alive, idle-close-on-response %v", j.c.title, j.idleClose)
	}
	if ctx.Err() != nil {
		return result{err: "not run: " + whyDone()}
	}
	fmt.Fprintf(os.Stderr, "bench: %s ...\n", what)
	t0 := time.Now()
	r := runOne(ctx, p, j)
	status := "ok"
	if r.err != "" {
		status = "ERROR " + r.err
	}
	fmt.Fprintf(os.Stderr, "bench: %s done in %s: %s\n", what, time.Since(t0).Round(time.Millisecond), status)
	return r
}

// interrupted ends when the bench gets SIGINT or SIGTERM.
var interrupted = context.Background()

// whyDone names why a job's context ended.
func whyDone() string {
	if interrupted.Err() != nil {
		return "interrupted"
	}
	return "run bound (-max-duration) reached"
}

// setup checks what the run needs; its errors are the only non-zero exits.
func setup(p *params) error {
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	if p.reloads < -1 || p.b2b < -1 || p.workers < 0 || p.keepAlive < 0 || p.kaClients < 0 || p.kaReloads < 0 || p.interval < 0 || p.idle < 0 || p.maxDuration <= 0 {
		return errors.New("negative counts or durations, or non-positive -max-duration")
	}
	for _, r := range strings.ToUpper(p.only) {
		if !strings.ContainsRune("AKBCR", r) {
			return fmt.Errorf("-only %q: use letters of AKBCR", p.only)
		}
	}
	src := p.sizesFlag
	if src == "" {
		src = os.Getenv("BENCH_SIZES")
	}
	if src == "" {
		src = defaultSizes
	}
	var err error
	if p.sizes, err = parseSizes(src); err != nil {
		return err
	}
	abs, err := filepath.Abs(p.wrapper)
	if err != nil {
		return err
	}
	p.wrapper = abs
	for _, bin := range []string{p.wrapper, p.haproxy} {
		st, err := os.Stat(bin)
		if err != nil {
			return fmt.Errorf("%v (run 'make build' first for the wrapper)", err)
		}
		if st.IsDir() || st.Mode()&0o111 == 0 {
			return fmt.Errorf("%s is not an executable file", bin)
		}
	}
	if runtime.GOOS != "linux" {
		return errors.New("linux only (/proc)")
	}
	vc, err := os.MkdirTemp("", "hsw-bench-versions")
	if err != nil {
		return err
	}
	p.versionCache = filepath.Join(vc, "haproxy-versions")
	return nil
}

// warmVersionCache starts and stops the wrapper once on an empty
// configuration, so that A's starts find haproxy's version in the cache, as
// every start of a unit but the first after boot does.
func warmVersionCache(ctx context.Context, p params) error {
	dir, err := os.MkdirTemp("", "hbw")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	port, err := testutil.FreePort()
	if err != nil {
		return err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cfg, err := writeConfig(dir, addr, size{name: "0"}, port, false)
	if err != nil {
		return err
	}
	pr, err := startProc(contenders[0], p, dir, cfg)
	if err != nil {
		return err
	}
	defer func() { _ = syscall.Kill(-pr.Pid(), syscall.SIGKILL); <-pr.Done() }()
	if _, err := waitPid(ctx, pr, addr, map[int]bool{}, size{}.readyBound(), nil); err != nil {
		return err
	}
	_ = pr.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-pr.Done():
	case <-time.After(stopBound):
	}
	if _, err := os.Stat(p.versionCache); err != nil {
		return fmt.Errorf("no cache written: %w", err)
	}
	return nil
}

func machineHeader(p params) string {
	var b strings.Builder
	hv := "?"
	if out, err := exec.Command(p.haproxy, "-v").Output(); err == nil {
		hv, _, _ = strings.Cut(strings.TrimSpace(string(out)), "\n")
	}
	goVer := runtime.Version()
	if out, err := exec.Command("go", "version").Output(); err == nil {
		goVer = strings.TrimSpace(string(out))
	}
	var u syscall.Utsname
	kernel := "?"
	if syscall.Uname(&u) == nil {
		kernel = cstr(u.Sysname[:]) + " " + cstr(u.Release[:]) + " " + cstr(u.Machine[:])
	}
	cpu := ""
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = " (" + strings.TrimSpace(v) + ")"
				break
			}
		}
	}
	load := "?"
	if data, err := os.ReadFile("/proc/loadavg"); err == nil {
		load = strings.Join(strings.Fields(string(data))[:3], " ")
	}
	var names []string
	for _, s := range p.sizes {
		paced, b2b := s.reloadCounts(p)
		names = append(names, fmt.Sprintf("%s (%d paced + %d back-to-back reloads)", s.label(), paced, b2b))
	}
	fmt.Fprintf(&b, "machine: nproc %d%s; kernel %s; load average at start %s\n", runtime.NumCPU(), cpu, kernel, load)
	fmt.Fprintf(&b, "haproxy: %s (%s)\n", hv, p.haproxy)
	fmt.Fprintf(&b, "go:      %s\n", goVer)
	fmt.Fprintf(&b, "wrapper: %s\n", p.wrapper)
	fmt.Fprintf(&b, "sizes:   %s\n", strings.Join(names, "; "))
	fmt.Fprintf(&b, "params:  -only %s -interval %s -load-workers %d -keepalive %d -ka-clients %d -ka-reloads %d -max-duration %s; "+
		"load request timeout %s; probe every %s (new connection); loopback 127.0.0.1, free ports\n",
		p.only, p.interval, p.workers, p.keepAlive, p.kaClients, p.kaReloads, p.maxDuration, loadTimeout, probeEvery)
	return b.String()
}

func cstr(a []int8) string {
	var b []byte
	for _, c := range a {
		if c == 0 {
			break
		}
		b = append(b, byte(c))
	}
	return string(b)
}
