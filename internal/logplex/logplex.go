// Package logplex writes lines to a Heroku app's log stream through the
// add-on's log_input_url (Heroku's logplex HTTP input): POST with
// Content-Type application/logplex-1, a Logplex-Msg-Count header and a body
// of octet-counted RFC 5424 frames, on a keep-alive connection. It
// implements addon.LogWriter.
//
// Frames are built with github.com/leodido/go-syslog (v4), a maintained
// RFC 5424 implementation whose builder validates every field, rather than
// by hand; the simulator parses them back with the same library's strict
// octet-counting parser.
package logplex

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/leodido/go-syslog/v4/rfc5424"

	"github.com/kiln-dev/kiln/internal/addon"
)

// Writer writes to log streams. It is safe for concurrent use.
type Writer struct {
	hc   *http.Client
	name string
}

// New builds a Writer. name is the add-on's id: it becomes the PROCID of
// Kiln's lines, so `heroku logs` shows them as app[<name>]. HOSTNAME and
// APP-NAME are "host" and "app", as in Heroku's example frame.
func New(name string, hc *http.Client) *Writer {
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	if name == "" {
		name = "kiln"
	}
	return &Writer{hc: hc, name: name}
}

// Severities of RFC 5424, with facility local0 (16), as add-ons write.
const (
	priInfo  = 16*8 + 6
	priError = 16*8 + 3
)

// Frames encodes lines as octet-counted RFC 5424 frames.
func (w *Writer) Frames(lines []addon.LogLine) ([]byte, error) {
	var b bytes.Buffer
	for _, l := range lines {
		m := &rfc5424.SyslogMessage{}
		pri := uint8(priInfo)
		if l.Error {
			pri = priError
		}
		at := l.At
		if at.IsZero() {
			at = time.Now()
		}
		m.SetPriority(pri)
		m.SetVersion(1)
		m.SetTimestamp(at.UTC().Format(time.RFC3339Nano))
		m.SetHostname("host")
		m.SetAppname("app")
		m.SetProcID(w.name)
		m.SetMessage(oneLine(addon.Scrub(l.Message)))
		s, err := m.String()
		if err != nil {
			return nil, addon.Wrap(addon.EINTERNAL, err, "A log line could not be encoded.")
		}
		b.WriteString(strconv.Itoa(len(s)))
		b.WriteByte(' ')
		b.WriteString(s)
	}
	return b.Bytes(), nil
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// WriteLog sends lines in one request. A 4xx is EINVALID (EUNAUTHORIZED for
// 401/403), so the caller re-reads the URL; a network error or 5xx is
// EUNAVAILABLE, worth a retry. The URL's credentials never appear in errors.
func (w *Writer) WriteLog(ctx context.Context, rawURL string, lines []addon.LogLine) error {
	if len(lines) == 0 {
		return nil
	}
	body, err := w.Frames(lines)
	if err != nil {
		return err
	}
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return addon.Errorf(addon.EINVALID, "The log_input_url is not a URL.")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return addon.Errorf(addon.EINVALID, "The log_input_url is not a URL.")
	}
	req.Header.Set("Content-Type", "application/logplex-1")
	req.Header.Set("Logplex-Msg-Count", strconv.Itoa(len(lines)))
	req.Header.Set("User-Agent", "kiln-logplex/1 ("+w.name+")")
	res, err := w.hc.Do(req)
	if err != nil {
		// *url.Error quotes the URL, token included: keep only the host.
		return addon.Errorf(addon.EUNAVAILABLE, "The log stream at %s could not be reached.", u.Host)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	res.Body.Close()
	switch {
	case res.StatusCode/100 == 2:
		return nil
	case res.StatusCode == http.StatusUnauthorized, res.StatusCode == http.StatusForbidden:
		return addon.Errorf(addon.EUNAUTHORIZED, "The log stream at %s refused the token (%d).", u.Host, res.StatusCode)
	case res.StatusCode == http.StatusTooManyRequests, res.StatusCode >= 500:
		return addon.Errorf(addon.EUNAVAILABLE, "The log stream at %s answered %d.", u.Host, res.StatusCode)
	}
	return addon.Errorf(addon.EINVALID, "The log stream at %s refused the lines (%d).", u.Host, res.StatusCode)
}
