package web_test

import (
	"context"
	"encoding/base64"
	"html/template"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/kiln-dev/kiln/internal/kilntest"
	"github.com/kiln-dev/kiln/internal/web"
)

// The browser tests drive Debian's headless Chromium through the pages a
// customer and an operator really use: single sign-on from another site
// (as from Heroku's dashboard) to the dashboard, revealing a config value,
// and the queue dashboard loading with nothing from outside. Chromium must
// be installed (make test installs it when it can); without it the tests
// are skipped and make test's summary says so. KILN_BROWSER_TESTS=0 skips
// them on purpose. Setting
// KILN_SCREENSHOTS to a directory saves screenshots of the dashboard there.

// chromium returns the browser to drive, or ends the test.
func chromium(t *testing.T) string {
	t.Helper()
	if os.Getenv("KILN_BROWSER_TESTS") == "0" {
		t.Skip("KILN_BROWSER_TESTS=0: browser tests skipped")
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	kilntest.SkipMissing(t, "Chromium is not installed, so the browser tests did not run (make test installs it as root; else: sudo apt-get install -y chromium)")
	return ""
}

// browser starts a headless Chromium with a fresh profile and returns a tab.
// The flags keep it from reaching out (the test machines have no internet,
// and Chromium stalls trying).
func browser(t *testing.T, path string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(acancel)
	tab, tcancel := chromedp.NewContext(actx)
	t.Cleanup(tcancel)
	if err := chromedp.Do(tab); err != nil { // opens the tab (and enables the network domain)
		t.Fatalf("start Chromium (%s): %v", path, err)
	}
	return tab
}

// requests records every URL the tab requests.
type requests struct {
	mu   sync.Mutex
	urls []string
}

func (r *requests) listen(tb testing.TB, ctx context.Context) {
	tb.Helper()
	err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok {
			r.mu.Lock()
			r.urls = append(r.urls, e.Request.URL)
			r.mu.Unlock()
		}
	})
	if err != nil {
		tb.Fatal(err)
	}
}

func (r *requests) since(n int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.urls[n:]...)
}

func (r *requests) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.urls)
}

// ssoPage is a page that posts Heroku's sign-in form as soon as it loads,
// as Heroku's dashboard does.
var ssoPage = template.Must(template.New("sso").Parse(`<!doctype html>
<html><body onload="document.forms[0].submit()">
<form method="post" action="{{.Action}}">
{{range $k, $vs := .Form}}{{range $vs}}<input type="hidden" name="{{$k}}" value="{{.}}">{{end}}{{end}}
</form></body></html>`))

func TestBrowser(t *testing.T) {
	path := chromium(t)
	t.Parallel()
	c := newCustomer(t, customerConfig{})
	a := c.provisioned(t)
	kiln := httptest.NewServer(c.e)
	t.Cleanup(kiln.Close)

	// "Heroku" serves the sign-in page from another site: localhost, while
	// Kiln is 127.0.0.1.
	heroku := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = ssoPage.Execute(w, map[string]any{"Action": kiln.URL + web.SSOPath, "Form": newSigner(string(a.ID)).form()})
	}))
	t.Cleanup(heroku.Close)
	herokuURL := strings.Replace(heroku.URL, "127.0.0.1", "localhost", 1)

	tab := browser(t, path)
	var seen requests
	seen.listen(t, tab)

	t.Run("sign in and reveal a config value", func(t *testing.T) {
		err := chromedp.Do(tab,
			chromedp.Navigate(herokuURL),
			chromedp.WaitVisible(chromedp.ID("addon-name")),
		)
		if err != nil {
			t.Fatalf("sign in: %v", err)
		}
		location := run(t, tab, chromedp.Location())
		hiddenBefore := run(t, tab, chromedp.Evaluate[bool](`document.getElementById("value-0").hidden`))
		mask := run(t, tab, chromedp.Text(chromedp.ID("mask-0")))
		if location != kiln.URL+"/dashboard/resources/"+string(a.ID) {
			t.Fatalf("landed on %s, want the add-on's dashboard", location)
		}
		if !hiddenBefore || strings.Contains(mask, "http") {
			t.Fatalf("the config value shows before it is revealed (hidden=%v, mask %q)", hiddenBefore, mask)
		}
		cookies, err := cookiesOf(tab, kiln.URL+"/dashboard/resources/"+string(a.ID))
		if err != nil {
			t.Fatal(err)
		}
		if s := cookies["kiln_session"]; s == nil || !s.HTTPOnly || s.SameSite != network.CookieSameSiteLax {
			t.Errorf("session cookie = %+v, want an HttpOnly, SameSite=Lax kiln_session", s)
		}
		if n := cookies["heroku-nav-data"]; n == nil || n.Value != newSigner(string(a.ID)).navData {
			t.Errorf("heroku-nav-data cookie = %+v, want the posted nav-data", n)
		}
		screenshots(t, tab, "dashboard")

		err = chromedp.Do(tab,
			chromedp.Click(chromedp.CSS(`button[data-reveal="value-0"]`)),
			chromedp.WaitVisible(chromedp.ID("value-0")),
		)
		if err != nil {
			t.Fatalf("reveal: %v", err)
		}
		value := run(t, tab, chromedp.Text(chromedp.ID("value-0")))
		button := run(t, tab, chromedp.Text(chromedp.CSS(`button[data-reveal="value-0"]`)))
		hiddenAfter := run(t, tab, chromedp.Evaluate[bool](`document.getElementById("value-0").hidden`))
		if value != a.Vars["URL"] || hiddenAfter || button != "Hide" {
			t.Errorf("after Reveal: value %q (hidden=%v), button %q; want the URL shown and a Hide button", value, hiddenAfter, button)
		}
		screenshots(t, tab, "dashboard-revealed")
	})

	t.Run("queue dashboard loads with nothing from outside", func(t *testing.T) {
		before := seen.len()
		auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:"+adminPassword))
		if _, err := chromedp.Call(tab, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
			Headers: network.Headers{"Authorization": auth},
		}); err != nil {
			t.Fatal(err)
		}
		err := chromedp.Do(tab,
			chromedp.Navigate(kiln.URL+web.QueuesPath),
			// The queue list names the queues the pipeline filled.
			chromedp.WaitVisible(chromedp.Search(`//table//*[normalize-space(text())="grant"]`)),
		)
		if err != nil {
			t.Fatalf("queue dashboard: %v", err)
		}
		screenshots(t, tab, "queues")
		urls := seen.since(before)
		if len(urls) < 3 {
			t.Fatalf("only %d requests seen: %v", len(urls), urls)
		}
		for _, u := range urls {
			if !strings.HasPrefix(u, kiln.URL+"/") && !strings.HasPrefix(u, "data:") && !strings.HasPrefix(u, "blob:") {
				t.Errorf("the queue dashboard requested %s, outside Kiln", u)
			}
		}
	})
}

// run runs one action that reads a value, ending the test on failure.
func run[T any](tb testing.TB, ctx context.Context, a chromedp.Action[T]) T {
	tb.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// cookiesOf returns the browser's cookies for a URL by name.
func cookiesOf(ctx context.Context, u string) (map[string]*network.Cookie, error) {
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{u}})
	out := map[string]*network.Cookie{}
	for _, c := range res.Cookies {
		out[c.Name] = c
	}
	return out, err
}

// screenshots saves a phone-sized and a desktop-sized screenshot of the tab
// into $KILN_SCREENSHOTS, when it is set.
func screenshots(t *testing.T, tab context.Context, name string) {
	t.Helper()
	dir := os.Getenv("KILN_SCREENSHOTS")
	if dir == "" {
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Errorf("screenshots: %v", err)
		return
	}
	for _, v := range []struct {
		suffix        string
		width, height int64
		mobile        bool
	}{
		{"phone", 390, 844, true},
		{"desktop", 1280, 900, false},
	} {
		opts := []chromedp.EmulateViewportOption{chromedp.EmulateScale(1)}
		if v.mobile {
			opts = append(opts, chromedp.EmulateMobile)
		}
		if err := chromedp.Do(tab, chromedp.EmulateViewport(v.width, v.height, opts...)); err != nil {
			t.Errorf("viewport %s: %v", name, err)
			return
		}
		png, err := chromedp.Run(tab, chromedp.FullScreenshot(100))
		if err != nil {
			t.Errorf("screenshot %s: %v", name, err)
			return
		}
		file := filepath.Join(dir, name+"-"+v.suffix+".png")
		if err := os.WriteFile(file, png, 0o644); err != nil {
			t.Errorf("save %s: %v", file, err)
		}
	}
	_ = chromedp.Do(tab, chromedp.EmulateReset())
}
