package addon

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// logBatch is how many audit-trail events one write reads.
const logBatch = 100

// logMaxAge bounds how old an event may be and still reach the app's log:
// an add-on that gains a log_input_url (or a deploy that starts the log
// stream) does not replay its whole history.
const logMaxAge = 24 * time.Hour

// WriteLog writes the add-on's new milestones to the app's log stream
// (log_input_url), so `heroku logs` shows what Kiln does for the customer:
// provisioning started, resource ready, provisioned, plan changed,
// credentials rotated, and failures with the reason the customer should
// read. Lines come from the audit trail, so nothing here sits in the
// provisioning path: a log stream that is down never slows or fails a
// provision. A URL refused with 4xx is read again from the add-on (Heroku
// rotates it) and tried once more; lines that still cannot be written are
// dropped with a warning, and transient failures are retried a bounded
// number of times by the job queue.
//
// The queue holds the job LogDelay before it runs, so the milestones
// recorded meanwhile are written together; each batch costs a read of the
// add-on, one read of its cursor and events, the write, and one statement
// that advances the cursor.
func (k *Keeper) WriteLog(ctx context.Context, id ID) error {
	if k.Logs == nil {
		return nil
	}
	for range 10 {
		more, err := k.writeLogOnce(ctx, id)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

func (k *Keeper) writeLogOnce(ctx context.Context, id ID) (more bool, err error) {
	a, err := k.Service.store.Get(ctx, id)
	if err != nil {
		return false, err
	}
	if a.LogInputURL == "" {
		return false, nil
	}
	events, err := k.Links.EventsToLog(ctx, id, logBatch)
	if err != nil || len(events) == 0 {
		return false, err
	}
	var lines []LogLine
	oldest := k.now().Add(-logMaxAge)
	for _, e := range events {
		if e.At.Before(oldest) {
			continue
		}
		if line, ok := Milestone(e); ok {
			lines = append(lines, line)
		}
	}
	if len(lines) > 0 {
		err = k.Logs.WriteLog(ctx, a.LogInputURL, lines)
		if err != nil && !Transient(err) {
			// Refused (4xx): Heroku may have rotated the URL.
			if fresh, gerr := k.Service.store.Get(ctx, id); gerr == nil && fresh.LogInputURL != "" && fresh.LogInputURL != a.LogInputURL {
				err = k.Logs.WriteLog(ctx, fresh.LogInputURL, lines)
			}
			if err != nil && !Transient(err) {
				k.log().WarnContext(ctx, "the app's log stream refused Kiln's lines; dropped", "addon", id, "lines", len(lines), "err", err)
				err = nil
			}
		}
		if err != nil {
			return false, fmt.Errorf("write to the app's log stream: %w", err)
		}
	}
	if err := k.Links.AdvanceLogCursor(ctx, id, events[len(events)-1].ID); err != nil {
		return false, err
	}
	return len(events) == logBatch, nil
}

// userinfo matches the credentials part of a URL, so no line can carry one.
var userinfo = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@]+@`)

// secretish matches words that look like keys, tokens or passwords.
var secretish = regexp.MustCompile(`(?i)\b(password|passwd|token|secret|key|api_key)\s*[=:]\s*\S+`)

// Scrub removes anything that looks like a credential from a log line.
func Scrub(s string) string {
	s = userinfo.ReplaceAllString(s, "${1}[redacted]@")
	return secretish.ReplaceAllString(s, "${1}=[redacted]")
}

// Milestone turns an audit-trail event into the line the customer reads in
// the app's log, or reports false for events the customer need not see.
func Milestone(e Event) (LogLine, bool) {
	msg := ""
	isErr := false
	switch e.Kind {
	case "state":
		switch e.State {
		case StateProvisioning:
			if strings.HasPrefix(e.Message, "provision requested") {
				msg = "Provisioning started" + strings.TrimPrefix(e.Message, "provision requested") + "."
			} else if e.Message != "" {
				msg = "Provisioning restarted: " + e.Message + "."
			}
		case StateProvisioned:
			msg = "Provisioned: the config vars are set and the app restarts with them."
		case StateFailed:
			msg, isErr = "Provisioning failed: "+e.Message+".", true
		case StateDeprovisioning:
			msg = "Deprovisioning: " + e.Message + "."
		case StateDeprovisioned:
			msg = "Deprovisioned: the resource and its data are destroyed."
		}
	case "step":
		if strings.HasPrefix(e.Message, "resource created") {
			msg = "Resource ready."
		}
	case "plan":
		switch {
		case strings.HasPrefix(e.Message, "plan changed"):
			msg = "Plan changed" + strings.TrimPrefix(e.Message, "plan changed") + "."
		case strings.Contains(e.Message, "refused"):
			msg, isErr = "Plan c"+strings.TrimPrefix(e.Message, "plan c")+".", true
		}
	case "credentials":
		rest := strings.TrimLeft(strings.TrimPrefix(e.Message, "credentials rotated"), "; ")
		switch {
		case strings.HasPrefix(e.Message, "old credentials revoked"):
			msg = "The credentials replaced by the last rotation no longer work."
		case rest != "":
			msg = "Credentials rotated: the new ones are in the config vars; " + rest + "."
		default:
			msg = "Credentials rotated: the new ones are in the config vars; the old ones no longer work."
		}
	}
	if msg == "" {
		return LogLine{}, false
	}
	msg = strings.ReplaceAll(msg, "..", ".")
	return LogLine{At: e.At, Message: Scrub(msg), Error: isErr}, true
}
