package main

import (
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

func pct(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(q*float64(len(s))+0.999999) - 1 // nearest rank
	return s[min(max(i, 0), len(s)-1)]
}

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func ms(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", msf(d))
}

func kinds(m map[string]int) string {
	var ks []string
	for k, v := range m {
		if v > 0 {
			ks = append(ks, fmt.Sprintf("%s=%d", k, v))
		}
	}
	sort.Strings(ks)
	if len(ks) == 0 {
		return "-"
	}
	return strings.Join(ks, " ")
}

// reloadsPerSec is the back-to-back reload rate.
func (r result) reloadsPerSec() float64 {
	if r.b2bDone == 0 || r.b2bFor == 0 {
		return 0
	}
	return float64(r.b2bDone) / r.b2bFor.Seconds()
}

func (r result) status() string {
	if r.err != "" {
		return "ERROR"
	}
	for _, n := range r.notes {
		if strings.HasPrefix(n, "aborted") {
			return "aborted"
		}
	}
	return "ok"
}

func rssMiB(kB int) string {
	if kB == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", float64(kB)/1024)
}

func ratio(a, c float64) string {
	if a == 0 || c == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", a/c)
}

func printReport(w io.Writer, p params, rows, kaRows []row) {
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Reloads by configuration size (times in ms; failed: requests of the load that failed during the paced and back-to-back reloads)")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "size\tcontender\tstatus\treloads ok\treload p50\tp95\tmax\tstart\treloads/s\trequests\tfailed\tfailed kinds\tsup. RSS MiB\tstop\t")
	for _, x := range rows {
		r := x.r
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d+%d/%d\t%s\t%s\t%s\t%s\t%.2f\t%d\t%d\t%s\t%s\t%s\t\n",
			x.s.label(), x.c.title, r.status(), len(r.latencies), r.b2bDone, r.signalled,
			ms(pct(r.latencies, .5)), ms(pct(r.latencies, .95)), ms(pct(r.latencies, 1)), ms(r.startReady),
			r.reloadsPerSec(), r.load.Sent, r.load.Failed, kinds(r.load.Errors), rssMiB(r.peakRSSkB), ms(r.stop))
	}
	tw.Flush()

	// Ratios A/C and A+check/C per size.
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Ratios to C (haproxy -W) per size: reload p50 (lower is better), start (lower is better), back-to-back reloads/s (higher is better), supervisor RSS")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "size\treload p50 A/C\tstart A/C\treloads/s A/C\tRSS A/C\treload p50 A+check/C\tstart A+check/C\treloads/s A+check/C\t")
	for _, s := range p.sizes {
		a, k, c := find(rows, s, "A"), find(rows, s, "K"), find(rows, s, "C")
		if c == nil {
			continue
		}
		line := s.label()
		for _, x := range []*row{a, k} {
			if x == nil {
				line += "\t-\t-\t-"
				if x == a {
					line += "\t-"
				}
				continue
			}
			line += "\t" + ratio(msf(pct(x.r.latencies, .5)), msf(pct(c.r.latencies, .5))) +
				"\t" + ratio(msf(x.r.startReady), msf(c.r.startReady)) +
				"\t" + ratio(x.r.reloadsPerSec(), c.r.reloadsPerSec())
			if x == a {
				line += "\t" + ratio(float64(x.r.peakRSSkB), float64(c.r.peakRSSkB))
			}
		}
		fmt.Fprintln(tw, line+"\t")
	}
	tw.Flush()

	// Ratios to R, the physical limit: what the wrapper costs over a bare
	// "haproxy -x -sf" loop.
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Ratios to R (bare haproxy -x -sf from a minimal loop, the physical limit) per size: A/R and C/R")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "size\treload p50 A/R\tstart A/R\treloads/s A/R\treload p50 C/R\tstart C/R\treloads/s C/R\t")
	for _, s := range p.sizes {
		rr := find(rows, s, "R")
		if rr == nil {
			continue
		}
		line := s.label()
		for _, x := range []*row{find(rows, s, "A"), find(rows, s, "C")} {
			if x == nil {
				line += "\t-\t-\t-"
				continue
			}
			line += "\t" + ratio(msf(pct(x.r.latencies, .5)), msf(pct(rr.r.latencies, .5))) +
				"\t" + ratio(msf(x.r.startReady), msf(rr.r.startReady)) +
				"\t" + ratio(x.r.reloadsPerSec(), rr.r.reloadsPerSec())
		}
		fmt.Fprintln(tw, line+"\t")
	}
	tw.Flush()

	if len(kaRows) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintf(w, "Keep-alive: %d raw keep-alive clients (one request every %s each, no retry) across %d reloads, 0 backends.\n", p.kaClients, kaGap, p.kaReloads)
		fmt.Fprintln(w, "cut: a request written on a reused connection that was closed (EOF/reset) before any byte of the answer.")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "contender\tidle-close-on-response\tstatus\treloads ok\trequests\tcut\tother failed\tother kinds\tConnection: close answers\t")
		for _, x := range kaRows {
			r := x.r
			fmt.Fprintf(tw, "%s\t%v\t%s\t%d/%d\t%d\t%d\t%d\t%s\t%d\t\n", x.c.title, x.idleClose, r.status(), len(r.latencies), r.signalled,
				r.ka.Sent, r.ka.Cut, r.ka.Other, kinds(r.ka.Kinds), r.ka.Closes)
		}
		tw.Flush()
	}

	fmt.Fprintln(w)
	all := append(append([]row(nil), rows...), kaRows...)
	for _, x := range all {
		tag := x.c.title + ", " + x.s.label()
		if x.r.err != "" {
			fmt.Fprintf(w, "%s error: %s\n", tag, x.r.err)
		}
		for _, n := range x.r.notes {
			fmt.Fprintf(w, "%s note: %s\n", tag, n)
		}
		if x.r.notReady > 0 {
			fmt.Fprintf(w, "%s note: %d reloads signalled although the supervisor had not caught SIGUSR2 for 5 s\n", tag, x.r.notReady)
		}
		if n := len(x.r.probeFails); n > 0 {
			fmt.Fprintf(w, "%s note: latency probe failures %s\n", tag, kinds(x.r.probeFails))
		}
	}
	fmt.Fprintf(w, `How: each contender runs alone per size, in its own process group and temporary folder, with the same
generated config (HTTP frontend answering "pid %%pid", stats socket ... expose-fd listeners, hard-stop-after 10s,
N backends "server s1 127.0.0.1:<unused port>" without checks, or one map() rule over the generated map).
A: the wrapper with CONFIG, PIDFILE, HAPROXY_WRAPPER_CONTROL_SOCKET/RUNTIME_DIR, HAPROXY_BIN, HAPROXY_STATS_SOCKET
and HAPROXY_WRAPPER_VERSION_CACHE (warmed by one start before the run, as a unit's restart finds it; -x from the
sockets it holds); A+check: the same with HAPROXY_WRAPPER_CHECK=true; C: "haproxy -W -f cfg" (foreground master);
R: "haproxy -f cfg -db [-x admin.sock -sf <live pids>]" started by a minimal loop (the bench binary itself,
-raw-loop), no readiness wait. All reloaded with SIGUSR2 to the supervisor. Reload latency: signal -> first answer, on a new connection polled every %s,
naming a haproxy pid never seen before (paced reloads, %s apart). Reloads/s: back-to-back reloads, each signalled
as soon as the previous one's new pid answered and the supervisor catches SIGUSR2 again (/proc SigCgt, not
SigBlk: a re-executing -W master loses an early SIGUSR2; checked before every reload, for every contender),
divided by their total time. Start: launch -> first HTTP 200.
Load during all reloads: %d clients with a new connection per request + %d keep-alive clients (loadgen).
Supervisor RSS: max of VmHWM of the wrapper / the -W master, sampled every %s. Stop: SIGTERM -> reaped.
`, probeEvery, p.interval, p.workers, p.keepAlive, rssSampleTick)
}

func find(rows []row, s size, key string) *row {
	for i := range rows {
		if rows[i].s.name == s.name && rows[i].c.key == key {
			return &rows[i]
		}
	}
	return nil
}

// writeFiles writes bench.csv, keepalive.csv and bench.svg into p.out.
func writeFiles(p params, rows, kaRows []row) ([]string, error) {
	if err := os.MkdirAll(p.out, 0o755); err != nil {
		return nil, err
	}
	var files []string
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }

	recs := [][]string{{"size", "backends", "map_entries", "contender", "status", "paced_reloads_ok", "b2b_reloads_ok", "signalled",
		"reload_p50_ms", "reload_p95_ms", "reload_max_ms", "start_ms", "reloads_per_s", "requests", "failed", "failed_kinds",
		"supervisor_peak_rss_kb", "stop_ms", "error"}}
	for _, x := range rows {
		r := x.r
		recs = append(recs, []string{x.s.name, strconv.Itoa(x.s.backends), strconv.Itoa(x.s.mapLines), x.c.title, r.status(),
			strconv.Itoa(len(r.latencies)), strconv.Itoa(r.b2bDone), strconv.Itoa(r.signalled),
			f(msf(pct(r.latencies, .5))), f(msf(pct(r.latencies, .95))), f(msf(pct(r.latencies, 1))), f(msf(r.startReady)),
			f(r.reloadsPerSec()), strconv.Itoa(r.load.Sent), strconv.Itoa(r.load.Failed), kinds(r.load.Errors),
			strconv.Itoa(r.peakRSSkB), f(msf(r.stop)), r.err})
	}
	path := filepath.Join(p.out, "bench.csv")
	if err := writeCSV(path, recs); err != nil {
		return files, err
	}
	files = append(files, path)

	if len(kaRows) > 0 {
		recs = [][]string{{"contender", "idle_close_on_response", "status", "reloads_ok", "signalled", "requests", "cut", "other_failed", "other_kinds", "connection_close_answers", "error"}}
		for _, x := range kaRows {
			r := x.r
			recs = append(recs, []string{x.c.title, strconv.FormatBool(x.idleClose), r.status(), strconv.Itoa(len(r.latencies)), strconv.Itoa(r.signalled),
				strconv.Itoa(r.ka.Sent), strconv.Itoa(r.ka.Cut), strconv.Itoa(r.ka.Other), kinds(r.ka.Kinds), strconv.Itoa(r.ka.Closes), r.err})
		}
		path = filepath.Join(p.out, "keepalive.csv")
		if err := writeCSV(path, recs); err != nil {
			return files, err
		}
		files = append(files, path)
	}

	path = filepath.Join(p.out, "bench.svg")
	if err := os.WriteFile(path, []byte(svgChart(p, rows)), 0o644); err != nil {
		return files, err
	}
	return append(files, path), nil
}

func writeCSV(path string, recs [][]string) error {
	fh, err := os.Create(path)
	if err != nil {
		return err
	}
	defer fh.Close()
	cw := csv.NewWriter(fh)
	if err := cw.WriteAll(recs); err != nil {
		return err
	}
	return fh.Close()
}

// svgChart: grouped bars of the reload p50 per size and contender, on a
// log scale, with the value above each bar.
func svgChart(p params, rows []row) string {
	var keys []contender
	for _, c := range contenders {
		for _, x := range rows {
			if x.c.key == c.key {
				keys = append(keys, c)
				break
			}
		}
	}
	colors := map[string]string{"A": "#1f77b4", "K": "#9ecae1", "B": "#ff7f0e", "C": "#d62728", "R": "#2ca02c"}
	const (
		left, right, top, bottom = 70.0, 20.0, 50.0, 60.0
		plotH                    = 320.0
		barW, gap                = 26.0, 30.0
	)
	groupW := float64(max(len(keys), 1))*barW + gap
	width := left + right + float64(len(p.sizes))*groupW
	width = math.Max(width, 560)
	height := top + plotH + bottom

	// Log scale from 10^lo to 10^hi ms.
	maxV := 1.0
	minV := math.Inf(1)
	for _, x := range rows {
		if v := msf(pct(x.r.latencies, .5)); v > 0 {
			maxV, minV = math.Max(maxV, v), math.Min(minV, v)
		}
	}
	if math.IsInf(minV, 1) {
		minV = 1
	}
	lo := math.Floor(math.Log10(minV))
	if lo > 0 {
		lo = 0
	}
	hi := math.Ceil(math.Log10(maxV))
	if hi <= lo {
		hi = lo + 1
	}
	y := func(v float64) float64 {
		return top + plotH - (math.Log10(v)-lo)/(hi-lo)*plotH
	}

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="12">`+"\n", width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%.0f" y="20" font-size="14" font-weight="bold">Reload latency p50 (ms, log scale): SIGUSR2 to a new haproxy pid answering</text>`+"\n", left)
	// Legend.
	lx := left
	for _, c := range keys {
		fmt.Fprintf(&b, `<rect x="%.0f" y="30" width="12" height="12" fill="%s"/><text x="%.0f" y="41">%s</text>`+"\n", lx, colors[c.key], lx+16, esc(c.title))
		lx += 40 + 7*float64(len(c.title))
	}
	// Grid and axis labels per decade.
	for e := lo; e <= hi; e++ {
		v := math.Pow(10, e)
		fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, width-right, y(v), y(v))
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, y(v)+4, strconv.FormatFloat(v, 'f', -1, 64))
	}
	fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" stroke="black"/>`+"\n", left, width-right, top+plotH, top+plotH)
	for i, s := range p.sizes {
		gx := left + gap/2 + float64(i)*groupW
		for k, c := range keys {
			x := find(rows, s, c.key)
			if x == nil {
				continue
			}
			v := msf(pct(x.r.latencies, .5))
			bx := gx + float64(k)*barW
			if v <= 0 {
				fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="10">n/a</text>`+"\n", bx+barW/2, top+plotH-4)
				continue
			}
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s, %s: %.1f ms</title></rect>`+"\n",
				bx, y(v), barW-3, top+plotH-y(v), colors[c.key], esc(c.title), esc(s.label()), v)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="9">%.0f</text>`+"\n", bx+barW/2-1.5, y(v)-3, v)
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle">%s</text>`+"\n", gx+float64(len(keys))*barW/2, top+plotH+18, esc(s.label()))
	}
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" font-size="10" fill="#555">haproxy-systemd-wrapper make bench, %s</text>`+"\n", left, height-12, time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	b.WriteString("</svg>\n")
	return b.String()
}

func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}
