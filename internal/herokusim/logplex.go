package herokusim

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	syslog "github.com/leodido/go-syslog/v4"
	"github.com/leodido/go-syslog/v4/octetcounting"
	"github.com/leodido/go-syslog/v4/rfc5424"
)

// LogLine is one RFC 5424 frame a logplex write carried, parsed.
type LogLine struct {
	AddonID   string    `json:"addon_id"`
	Raw       string    `json:"raw"` // the frame as sent, without its octet count
	Priority  int       `json:"priority"`
	Timestamp time.Time `json:"timestamp"`
	Hostname  string    `json:"hostname"`
	AppName   string    `json:"app_name"`
	ProcID    string    `json:"proc_id"`
	Message   string    `json:"message"`
}

// LogInputURL is the add-on's log_input_url on a simulator served at base
// (e.g. an httptest.Server's URL): Heroku's shape, a drain token as the
// password of user "token", path /logs.
func (s *Sim) LogInputURL(base, addonID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.addons[addonID]
	if a == nil {
		return ""
	}
	u, err := url.Parse(base)
	if err != nil {
		return ""
	}
	u.User = url.UserPassword("token", a.logToken)
	u.Path = "/logs"
	return u.String()
}

// RotateLogToken gives the add-on a new log token, as Heroku does when it
// rotates credentials: writes with the old one get 401 from now on.
func (s *Sim) RotateLogToken(addonID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.addons[addonID]
	if a == nil {
		return false
	}
	delete(s.logTok, a.logToken)
	a.logToken = "t." + uuid.NewString()
	s.logTok[a.logToken] = addonID
	return true
}

// Logs returns the frames written to the add-on's log stream, in order.
func (s *Sim) Logs(addonID string) []LogLine {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []LogLine
	for _, l := range s.logs {
		if l.AddonID == addonID {
			out = append(out, l)
		}
	}
	return out
}

// serveLogs is logplex's HTTP input: POST, Content-Type
// application/logplex-1, Logplex-Msg-Count equal to the number of frames,
// a body of octet-counted RFC 5424 frames, the drain token as the Basic-auth
// password. A body that does not parse, or whose count is wrong, is 400
// and nothing of it is kept (UNCONFIRMED: logplex's own answer to a bad
// frame is not documented; refusing the batch is the strict reading).
func (s *Sim) serveLogs(w http.ResponseWriter, r *http.Request) {
	at := s.now()
	rid := s.requestID()
	w.Header().Set("Request-Id", rid)
	st, addonID := s.logs1(w, r)
	s.record(Call{Kind: KindLogs, AddonID: addonID, At: at, Status: st, RequestID: rid})
}

func (s *Sim) logs1(w http.ResponseWriter, r *http.Request) (int, string) {
	if r.Method != http.MethodPost {
		return writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "Use POST."), ""
	}
	_, token, _ := r.BasicAuth()
	s.mu.Lock()
	addonID := s.logTok[token]
	s.mu.Unlock()
	if addonID == "" {
		return writeError(w, http.StatusUnauthorized, "unauthorized", "Unknown log token."), ""
	}
	if st, done := s.applyFault(w, KindLogs, addonID); done {
		return st, addonID
	}
	if ct := r.Header.Get("Content-Type"); !strings.EqualFold(strings.TrimSpace(ct), "application/logplex-1") {
		return writeError(w, http.StatusUnsupportedMediaType, "bad_request", "Content-Type must be application/logplex-1."), addonID
	}
	want, err := strconv.Atoi(r.Header.Get("Logplex-Msg-Count"))
	if err != nil || want < 1 {
		return writeError(w, http.StatusBadRequest, "bad_request", "Logplex-Msg-Count must be a positive number."), addonID
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		return writeError(w, http.StatusRequestEntityTooLarge, "bad_request", "Body too large."), addonID
	}
	lines, ok := parseFrames(body)
	if !ok || len(lines) != want {
		return writeError(w, http.StatusBadRequest, "bad_request", "The body is not "+strconv.Itoa(want)+" octet-counted RFC 5424 frames."), addonID
	}
	s.mu.Lock()
	for i := range lines {
		lines[i].AddonID = addonID
		s.logs = append(s.logs, lines[i])
	}
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
	return http.StatusNoContent, addonID
}

// parseFrames reads octet-counted RFC 5424 frames with a strict parser.
// The raw frames are cut by their counts too, so a test can check what was
// sent byte for byte.
func parseFrames(body []byte) ([]LogLine, bool) {
	var raws []string
	rest := body
	for len(rest) > 0 {
		sp := bytes.IndexByte(rest, ' ')
		if sp <= 0 {
			return nil, false
		}
		n, err := strconv.Atoi(string(rest[:sp]))
		if err != nil || n <= 0 || sp+1+n > len(rest) {
			return nil, false
		}
		raws = append(raws, string(rest[sp+1:sp+1+n]))
		rest = rest[sp+1+n:]
	}
	var out []LogLine
	bad := false
	octetcounting.NewParser(syslog.WithListener(func(res *syslog.Result) {
		if res.Error != nil || res.Message == nil {
			bad = true
			return
		}
		m, ok := res.Message.(*rfc5424.SyslogMessage)
		if !ok || !m.Valid() {
			bad = true
			return
		}
		l := LogLine{}
		if m.Priority != nil {
			l.Priority = int(*m.Priority)
		}
		if m.Timestamp != nil {
			l.Timestamp = *m.Timestamp
		}
		l.Hostname, l.AppName, l.ProcID, l.Message = deref(m.Hostname), deref(m.Appname), deref(m.ProcID), deref(m.Message)
		out = append(out, l)
	})).Parse(bytes.NewReader(body))
	if bad || len(out) != len(raws) {
		return nil, false
	}
	for i := range out {
		out[i].Raw = raws[i]
	}
	return out, true
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
