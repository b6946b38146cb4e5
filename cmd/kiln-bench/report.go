package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"
)

// Results is one run's figures; it is written as JSON for later comparison.
type Results struct {
	Started time.Time `json:"started"`
	Seconds float64   `json:"seconds"`
	Quick   bool      `json:"quick"`
	// Database is the benchmark database, dropped at the end of the run.
	Database string `json:"database"`
	Host     Host   `json:"host"`
	Sizes    sizes  `json:"sizes"`
	Load     struct {
		BeforeAccept   string `json:"before_accept,omitempty"`
		BeforeEndToEnd string `json:"before_end_to_end,omitempty"`
		BeforeBacklog  string `json:"before_backlog,omitempty"`
	} `json:"load_average"`

	// AcceptRatio is accept's throughput as a share of the baseline's: the
	// median over the rounds of accept against the baseline round just
	// before it. The machine's speed drifts with its neighbours' load (the
	// same work costs up to twice the CPU time from one minute to the
	// next), so only figures taken seconds apart are compared.
	AcceptRatio    float64       `json:"accept_ratio"`
	RoundRatios    []float64     `json:"round_ratios,omitempty"`
	Baseline       Rate          `json:"baseline"`
	Accept         Rate          `json:"accept"`
	BaselineRounds []Rate        `json:"baseline_rounds,omitempty"`
	AcceptRounds   []Rate        `json:"accept_rounds,omitempty"`
	EndToEnd       EndToEnd      `json:"end_to_end"`
	Steady         Steady        `json:"steady"`
	Freshness      Freshness     `json:"grant_freshness"`
	Growth         []GrowthRun   `json:"growth"`
	Latency        HerokuLatency `json:"heroku_latency"`
	RSS            RSS           `json:"peak_rss"`
	Targets        []Target      `json:"targets"`
	Profiles       []string      `json:"profiles,omitempty"`
}

// Host is the machine the figures belong to.
type Host struct {
	CPUs       int    `json:"cpus"`
	GoVersion  string `json:"go"`
	OS         string `json:"os"`
	LoadBefore string `json:"load_before"`
	LoadAfter  string `json:"load_after"`
}

// EndToEnd is the pipeline's throughput: request to actions/provision.
type EndToEnd struct {
	Addons      int            `json:"addons"`
	Provisioned int            `json:"provisioned"`
	Seconds     float64        `json:"seconds"`
	PerSecond   float64        `json:"per_second"`
	Latency     Latency        `json:"latency_ms"`
	Accept      Rate           `json:"accept"` // the provision calls, answered while the worker ran
	States      map[string]int `json:"states"`
	CPU         CPU            `json:"cpu"`
	Sessions    int64          `json:"postgres_connections_opened"`
}

// Steady is the pipeline at a steady pace (Rate add-ons sent a second):
// its latency with no queue, and its CPU per add-on.
type Steady struct {
	EndToEnd
	Rate float64 `json:"rate"`
}

// Freshness is how long OAuth grants wait under a resource backlog.
type Freshness struct {
	Delay                string  `json:"driver_delay"`
	Burst                int     `json:"burst"`
	BurstLatency         Latency `json:"burst_grant_latency_ms"`
	BurstGrantsPerSecond float64 `json:"burst_grants_per_second"`
	Queued               int     `json:"resource_jobs_queued_at_probe_start"`
	QueuedAfter          int     `json:"resource_jobs_queued_at_probe_end"`
	Probes               int     `json:"probes"`
	Exchanged            int     `json:"probes_exchanged"`
	ProbeErrors          int     `json:"probe_errors"`
	Latency              Latency `json:"probe_grant_latency_ms"`
}

// GrowthRun is accept measured with a given number of add-ons in the table.
type GrowthRun struct {
	Rows   int  `json:"rows"`
	Accept Rate `json:"accept"`
}

// RSS is the peak resident set (VmHWM) of each process.
type RSS struct {
	WebKB    int64 `json:"web_kb"`
	WorkerKB int64 `json:"worker_kb"`
}

// Target is one of issue 7's targets and whether this run met it.
type Target struct {
	Name string `json:"name"`
	Want string `json:"want"`
	Got  string `json:"got"`
	Met  bool   `json:"met"`
}

func hostInfo() Host {
	return Host{
		CPUs:       runtime.NumCPU(),
		GoVersion:  runtime.Version(),
		OS:         runtime.GOOS + "/" + runtime.GOARCH,
		LoadBefore: loadAverage(),
	}
}

// loadAverage is the 1, 5 and 15 minute load averages, as uptime prints
// them: figures taken under outside load say so.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func (r *Results) stamp() string { return r.Started.Format("20060102-150405") }

// ratio is a/b, or 0 when b is 0.
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// judge compares the run with the targets of issue 7. The targets are for
// the full run on the 2-core reference machine; a -quick run is judged too,
// but its figures mean nothing.
func (r *Results) judge() {
	add := func(name, want, got string, met bool) {
		r.Targets = append(r.Targets, Target{Name: name, Want: want, Got: got, Met: met})
	}
	if r.Accept.Requests > 0 {
		add("accept throughput", "≥ 5,000/s", perSec(r.Accept.PerSecond), r.Accept.PerSecond >= 5000)
		add("accept p99", "≤ 25 ms", msStr(r.Accept.Latency.P99), r.Accept.Latency.P99 <= 25)
		rb := r.AcceptRatio
		add("accept vs baseline (median of rounds)", "≥ 70%", fmt.Sprintf("%.0f%%", 100*rb), rb >= 0.70)
	}
	if r.EndToEnd.Addons > 0 {
		add("end to end", "≥ 1,000/s", perSec(r.EndToEnd.PerSecond), r.EndToEnd.PerSecond >= 1000 && r.EndToEnd.Provisioned == r.EndToEnd.Addons)
	}
	if r.Freshness.Probes > 0 {
		add("grant freshness p99", "≤ 10 s", secStr(r.Freshness.Latency.P99), r.Freshness.Latency.P99 <= 10000 && r.Freshness.Exchanged == r.Freshness.Probes)
	}
	if len(r.Growth) == 2 {
		g := ratio(r.Growth[1].Accept.Latency.P99, r.Growth[0].Accept.Latency.P99) - 1
		add(fmt.Sprintf("accept p99, %s vs %s rows", count(r.Growth[1].Rows), count(r.Growth[0].Rows)), "≤ +20%", fmt.Sprintf("%+.0f%%", 100*g), g <= 0.20)
	}
	if h := r.Latency; h.Addons > 0 {
		ok := h.Provisioned == h.Addons
		add("150 ms Heroku: one worker end to end", "≥ 200/s", perSec(h.PerSecond), ok && h.PerSecond >= 200)
		add("150 ms Heroku: grant exchanges in a burst", "≥ 300/s", perSec(h.GrantsPerSec), h.GrantsPerSec >= 300)
		add("150 ms Heroku: Redis connections, web + worker", "≤ 20", fmt.Sprintf("%d (web %d, worker %d)", h.PeakRedis["total"], h.PeakRedis["web"], h.PeakRedis["worker"]), h.PeakRedis["total"] <= 20)
		add("150 ms Heroku: Postgres connections, web + worker", "≤ 20", fmt.Sprintf("%d (web %d, worker %d)", h.PeakPostgres["total"], h.PeakPostgres["web"], h.PeakPostgres["worker"]), h.PeakPostgres["total"] <= 20)
	}
	if r.RSS.WebKB > 0 {
		add("web peak RSS", "≤ 60 MB", mb(r.RSS.WebKB), r.RSS.WebKB <= 60*1024)
	}
}

func perSec(v float64) string { return count(int(math.Round(v))) + "/s" }
func msStr(v float64) string  { return fmt.Sprintf("%.1f ms", v) }
func secStr(v float64) string { return fmt.Sprintf("%.2f s", v/1000) }
func mb(kb int64) string      { return fmt.Sprintf("%.1f MB", float64(kb)/1024) }

// count formats n with thousands separators.
func count(n int) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + count(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// row is one line of the figures table.
type row struct {
	name           string
	perSecond      float64 // 0: not a throughput
	p50, p99, maxL float64
	baseRate       float64
	baseP99        float64
	ratio          float64 // when set, the × baseline figure (accept: median of round pairs)
}

func (r *Results) rows() []row {
	var rows []row
	b := r.Baseline
	rate := func(name string, x Rate) row {
		return row{name: name, perSecond: x.PerSecond, p50: x.Latency.P50, p99: x.Latency.P99, maxL: x.Latency.Max, baseRate: b.PerSecond, baseP99: b.Latency.P99}
	}
	if r.Accept.Requests > 0 {
		acc := rate(fmt.Sprintf("accept: %d callers", r.Sizes.Callers), r.Accept)
		acc.ratio = r.AcceptRatio
		rows = append(rows, rate("baseline: 1 insert + 1 enqueue", b), acc)
	}
	if e := r.EndToEnd; e.Addons > 0 {
		rows = append(rows, row{name: fmt.Sprintf("end to end: %s add-ons (account)", count(e.Addons)), perSecond: e.PerSecond, p50: e.Latency.P50, p99: e.Latency.P99, maxL: e.Latency.Max, baseRate: b.PerSecond, baseP99: b.Latency.P99})
	}
	if e := r.Steady; e.Addons > 0 {
		rows = append(rows, row{name: fmt.Sprintf("steady: %s add-ons sent at %s", count(e.Addons), perSec(e.Rate)), perSecond: e.PerSecond, p50: e.Latency.P50, p99: e.Latency.P99, maxL: e.Latency.Max, baseP99: b.Latency.P99}) // paced: no × baseline
	}
	if f := r.Freshness; f.Probes > 0 {
		rows = append(rows,
			row{name: fmt.Sprintf("grants of a %s burst", count(f.Burst)), perSecond: f.BurstGrantsPerSecond, p50: f.BurstLatency.P50, p99: f.BurstLatency.P99, maxL: f.BurstLatency.Max, baseRate: b.PerSecond, baseP99: b.Latency.P99},
			row{name: fmt.Sprintf("grant freshness: %s slow jobs queued", count(f.Queued)), p50: f.Latency.P50, p99: f.Latency.P99, maxL: f.Latency.Max, baseRate: b.PerSecond, baseP99: b.Latency.P99})
	}
	for _, g := range r.Growth {
		rows = append(rows, rate(fmt.Sprintf("accept: %s rows in the table", count(g.Rows)), g.Accept))
	}
	if h := r.Latency; h.Addons > 0 {
		rows = append(rows,
			row{name: fmt.Sprintf("150 ms Heroku, GOMAXPROCS=8: %s add-ons, one worker", count(h.Addons)), perSecond: h.PerSecond, p50: h.Latencies.P50, p99: h.Latencies.P99, maxL: h.Latencies.Max, baseRate: b.PerSecond},
			row{name: "150 ms Heroku: grant exchanges of that burst", perSecond: h.GrantsPerSec, baseRate: b.PerSecond})
	}
	return rows
}

func (x row) cells() []string {
	c := []string{x.name, "", "", fmtMs(x.p50), fmtMs(x.p99), fmtMs(x.maxL), ""}
	if x.perSecond > 0 {
		c[1] = count(int(math.Round(x.perSecond)))
		if x.baseRate > 0 {
			c[2] = fmt.Sprintf("%.2f", ratio(x.perSecond, x.baseRate))
		}
		if x.ratio > 0 {
			c[2] = fmt.Sprintf("%.2f", x.ratio)
		}
	}
	if x.baseP99 > 0 {
		c[6] = fmt.Sprintf("%.1f", ratio(x.p99, x.baseP99))
	}
	return c
}

// fmtMs prints a latency in ms with sensible precision.
func fmtMs(v float64) string {
	switch {
	case v >= 100:
		return count(int(math.Round(v)))
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

var header = []string{"figure", "per second", "× baseline", "p50 ms", "p99 ms", "max ms", "p99 × baseline"}

func (r *Results) title() string {
	mode := ""
	if r.Quick {
		mode = " (-quick: sizes too small to mean anything)"
	}
	return fmt.Sprintf("Kiln benchmark %s UTC%s; %d CPUs, %s %s; load average %s before, %s after; %.0f s",
		r.Started.Format("2006-01-02 15:04"), mode, r.Host.CPUs, r.Host.GoVersion, r.Host.OS, r.Host.LoadBefore, r.Host.LoadAfter, r.Seconds)
}

// table prints the figures and the targets for a terminal.
func (r *Results) table(w io.Writer) {
	fmt.Fprintln(w, r.title())
	fmt.Fprintln(w)
	lines := [][]string{header}
	for _, x := range r.rows() {
		lines = append(lines, x.cells())
	}
	printRight(w, lines)
	if r.RSS.WebKB > 0 {
		fmt.Fprintf(w, "\npeak RSS (VmHWM): web %s, worker %s\n", mb(r.RSS.WebKB), mb(r.RSS.WorkerKB))
	}
	if cr := r.cpuRows(); len(cr) > 1 {
		fmt.Fprintln(w, "\nCPU per request (µs), by process; idle is the machine's unused cores; conns is Postgres connections opened:")
		printRight(w, cr)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "target\twant\tgot\t")
	for _, t := range r.Targets {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.Name, t.Want, t.Got, metStr(t.Met))
	}
	tw.Flush()
}

// printRight prints a table whose first column is left-aligned and the
// others right-aligned, as numbers read best.
func printRight(w io.Writer, lines [][]string) {
	width := 0
	for _, l := range lines {
		width = max(width, utf8.RuneCountInString(l[0]))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, l := range lines {
		first := l[0] + strings.Repeat(" ", width-utf8.RuneCountInString(l[0]))
		fmt.Fprintln(tw, strings.Join(append([]string{first}, l[1:]...), "\t")+"\t")
	}
	tw.Flush()
}

func metStr(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// markdown is the same table for docs/performance.md.
func (r *Results) markdown(w io.Writer) {
	fmt.Fprintf(w, "%s\n\n", r.title())
	fmt.Fprintf(w, "| %s |\n", strings.Join(header, " | "))
	fmt.Fprintf(w, "|%s\n", strings.Repeat(" ---: |", len(header)))
	for _, x := range r.rows() {
		fmt.Fprintf(w, "| %s |\n", strings.Join(x.cells(), " | "))
	}
	if r.RSS.WebKB > 0 {
		fmt.Fprintf(w, "\nPeak RSS (VmHWM): web %s, worker %s.\n", mb(r.RSS.WebKB), mb(r.RSS.WorkerKB))
	}
	if cr := r.cpuRows(); len(cr) > 1 {
		fmt.Fprintf(w, "\nCPU per request (µs) by process; idle is the machine's unused cores; conns is Postgres connections opened:\n\n")
		for i, c := range cr {
			fmt.Fprintf(w, "| %s |\n", strings.Join(c, " | "))
			if i == 0 {
				fmt.Fprintf(w, "|%s\n", strings.Repeat(" ---: |", len(c)))
			}
		}
	}
	fmt.Fprintf(w, "\n| target | want | got | |\n| --- | --- | --- | --- |\n")
	for _, t := range r.Targets {
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", t.Name, t.Want, t.Got, metStr(t.Met))
	}
}

// write saves the JSON, Markdown and SVG of the run, each also as latest.*.
func (r *Results) write(dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	var md, svg strings.Builder
	r.markdown(&md)
	r.histogram(&svg)
	var paths []string
	for _, f := range []struct {
		ext  string
		body []byte
	}{{".json", append(js, '\n')}, {".md", []byte(md.String())}, {"-latency.svg", []byte(svg.String())}} {
		for _, name := range []string{r.stamp(), "latest"} {
			p := filepath.Join(dir, name+f.ext)
			if err := os.WriteFile(p, f.body, 0o644); err != nil {
				return nil, err
			}
			if name != "latest" {
				paths = append(paths, p)
			}
		}
	}
	return paths, nil
}

// series is one latency distribution in the histogram.
type series struct {
	name   string
	color  string
	values []float64 // ms
}

// histogram draws the accept-latency distributions (baseline, accept, and
// accept with the small and large table) as an SVG: log-scaled buckets of
// latency on x, share of requests on y.
func (r *Results) histogram(w io.Writer) {
	var ss []series
	add := func(name, color string, x Rate) {
		if len(x.latencies) == 0 {
			return
		}
		v := make([]float64, len(x.latencies))
		for i, d := range x.latencies {
			v[i] = ms(d)
		}
		ss = append(ss, series{name, color, v})
	}
	add("baseline", "#888888", r.Baseline)
	add("accept", "#d9480f", r.Accept)
	colors := []string{"#1971c2", "#2f9e44"}
	for i, g := range r.Growth {
		add(fmt.Sprintf("accept, %s rows", count(g.Rows)), colors[i%len(colors)], g.Accept)
	}

	const (
		width, height          = 860, 420
		left, right, top, bott = 60, 20, 40, 50
		buckets                = 60
	)
	lo, hi := 0.1, 10.0
	for _, s := range ss {
		for _, v := range s.values {
			hi = math.Max(hi, v)
		}
	}
	hi = math.Pow(10, math.Ceil(math.Log10(hi)))
	span := math.Log10(hi) - math.Log10(lo)
	bucketOf := func(v float64) int {
		v = math.Max(v, lo)
		b := int((math.Log10(v) - math.Log10(lo)) / span * buckets)
		return min(b, buckets-1)
	}
	shares := make([][]float64, len(ss))
	top1 := 0.0
	for i, s := range ss {
		shares[i] = make([]float64, buckets)
		for _, v := range s.values {
			shares[i][bucketOf(v)]++
		}
		for b := range shares[i] {
			shares[i][b] /= float64(len(s.values))
			top1 = math.Max(top1, shares[i][b])
		}
	}
	if top1 == 0 {
		top1 = 1
	}
	top1 = math.Ceil(top1*20) / 20 // a multiple of 5%
	pw, ph := float64(width-left-right), float64(height-top-bott)
	x := func(b float64) float64 { return float64(left) + b/buckets*pw }
	y := func(share float64) float64 { return float64(top) + ph - share/top1*ph }

	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(w, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	fmt.Fprintf(w, `<text x="%d" y="20" font-size="14">Provision call latency (202), %d callers; %s</text>`+"\n", left, r.Sizes.Callers, xmlEscape(r.Started.Format("2006-01-02 15:04 UTC")))
	// Axes, decades and share grid.
	fmt.Fprintf(w, `<g stroke="#ccc">`)
	for d := lo; d <= hi*1.0001; d *= 10 {
		px := x((math.Log10(d) - math.Log10(lo)) / span * buckets)
		fmt.Fprintf(w, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d"/>`, px, top, px, height-bott)
	}
	for s := 0.05; s <= top1+1e-9; s += 0.05 {
		fmt.Fprintf(w, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f"/>`, left, y(s), width-right, y(s))
	}
	fmt.Fprintln(w, `</g>`)
	for d := lo; d <= hi*1.0001; d *= 10 {
		px := x((math.Log10(d) - math.Log10(lo)) / span * buckets)
		fmt.Fprintf(w, `<text x="%.1f" y="%d" text-anchor="middle">%s ms</text>`+"\n", px, height-bott+18, trimFloat(d))
	}
	for s := 0.05; s <= top1+1e-9; s += 0.05 {
		fmt.Fprintf(w, `<text x="%d" y="%.1f" text-anchor="end">%.0f%%</text>`+"\n", left-6, y(s)+4, s*100)
	}
	fmt.Fprintf(w, `<text x="%.1f" y="%d" text-anchor="middle">latency (log scale)</text>`+"\n", float64(left)+pw/2, height-10)
	fmt.Fprintf(w, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", left, height-bott, width-right, height-bott)
	// A legend box at the top left, where the fast baseline rarely reaches.
	fmt.Fprintf(w, `<rect x="%d" y="%d" width="340" height="%d" fill="white" fill-opacity="0.85" stroke="#ccc"/>`+"\n", left+8, top+4, 10+18*len(ss))
	// One step line per series, and a dashed mark at its p99.
	for i, s := range ss {
		var pts []string
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(0), y(0)))
		for b, v := range shares[i] {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f %.1f,%.1f", x(float64(b)), y(v), x(float64(b+1)), y(v)))
		}
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(buckets), y(0)))
		fmt.Fprintf(w, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", s.color, strings.Join(pts, " "))
		p99 := latencyOf(durations(s.values)).P99
		px := x((math.Log10(math.Max(p99, lo)) - math.Log10(lo)) / span * buckets)
		fmt.Fprintf(w, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-dasharray="4 3"/>`+"\n", px, top, px, height-bott, s.color)
		ly := top + 16 + 18*i
		fmt.Fprintf(w, `<rect x="%d" y="%d" width="14" height="4" fill="%s"/><text x="%d" y="%d">%s: p50 %s ms, p99 %s ms (dashed)</text>`+"\n",
			left+16, ly-4, s.color, left+36, ly, xmlEscape(s.name), fmtMs(latencyOf(durations(s.values)).P50), fmtMs(p99))
	}
	fmt.Fprintln(w, `</svg>`)
}

func durations(vs []float64) []time.Duration {
	out := make([]time.Duration, len(vs))
	for i, v := range vs {
		out[i] = time.Duration(v * float64(time.Millisecond))
	}
	return out
}

func trimFloat(v float64) string {
	s := fmt.Sprintf("%.1f", v)
	return strings.TrimSuffix(s, ".0")
}

func xmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}

// cpuRows is the CPU cost table: a header, then one row per throughput
// figure with the CPU each process spent per request (per add-on for the
// end-to-end run), so the table shows what each figure is made of.
func (r *Results) cpuRows() [][]string {
	type fig struct {
		name     string
		cpu      CPU
		rate     float64
		sessions int64
	}
	var figs []fig
	if r.Accept.Requests > 0 {
		figs = append(figs, fig{"baseline", r.Baseline.CPU, r.Baseline.PerSecond, r.Baseline.Sessions}, fig{"accept", r.Accept.CPU, r.Accept.PerSecond, r.Accept.Sessions})
	}
	if r.EndToEnd.Addons > 0 {
		figs = append(figs, fig{"end to end", r.EndToEnd.CPU, r.EndToEnd.PerSecond, r.EndToEnd.Sessions})
	}
	if r.Steady.Addons > 0 {
		figs = append(figs, fig{"steady", r.Steady.CPU, r.Steady.PerSecond, r.Steady.Sessions})
	}
	for _, g := range r.Growth {
		figs = append(figs, fig{"accept, " + count(g.Rows) + " rows", g.Accept.CPU, g.Accept.PerSecond, g.Accept.Sessions})
	}
	used := map[string]bool{}
	for _, f := range figs {
		for g, v := range f.cpu.Cores {
			if v >= 0.005 {
				used[g] = true
			}
		}
	}
	head := []string{"figure"}
	var groups []string
	for _, g := range cpuGroups {
		if used[g] {
			groups = append(groups, g)
			head = append(head, g)
		}
	}
	head = append(head, "total", "idle cores", "conns")
	out := [][]string{head}
	for _, f := range figs {
		if f.rate <= 0 {
			continue
		}
		row := []string{f.name}
		total := 0.0
		for _, g := range groups {
			us := f.cpu.Cores[g] * 1e6 / f.rate
			total += us
			row = append(row, fmt.Sprintf("%.0f", us))
		}
		row = append(row, fmt.Sprintf("%.0f", total), fmt.Sprintf("%.2f", f.cpu.Idle), fmt.Sprint(f.sessions))
		out = append(out, row)
	}
	return out
}
