package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"
)

// healthAnswer is the body of /healthz. Check results are "ok", "failed" or
// "timeout" only: the endpoint is public, so error details (host names,
// driver messages) go to the log, not to the caller.
type healthAnswer struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

// healthz runs every check concurrently under one short deadline and answers
// 200 when all pass, 503 naming the failing ones otherwise, so a load
// balancer or uptime check sees a broken dependency, not just a live process.
func (s *server) healthz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.healthTimeout)
	defer cancel()

	type result struct {
		name string
		err  error
	}
	done := make(chan result, len(s.health)) // buffered: a late check never blocks
	for _, check := range s.health {
		go func() { done <- result{check.Name, runCheck(ctx, check)} }()
	}
	results := make(map[string]string, len(s.health))
	for _, check := range s.health {
		results[check.Name] = "timeout" // until it reports; a check ignoring ctx stays so
	}
collect:
	for range s.health {
		select {
		case r := <-done:
			results[r.name] = "ok"
			if r.err != nil {
				results[r.name] = "failed"
				if errors.Is(r.err, context.DeadlineExceeded) {
					results[r.name] = "timeout"
				}
				s.log.Warn("health check failed", "request_id", requestIDOf(c), "check", r.name, "err", r.err)
			}
		case <-ctx.Done():
			s.log.Warn("health checks timed out", "request_id", requestIDOf(c), "timeout", s.healthTimeout)
			break collect
		}
	}

	answer := healthAnswer{Status: "ok", Checks: results}
	status := http.StatusOK
	for _, r := range results {
		if r != "ok" {
			answer.Status = "unavailable"
			status = http.StatusServiceUnavailable
		}
	}
	return c.JSON(status, answer)
}

// runCheck runs one check, turning a panic into a failure: the check runs on
// its own goroutine, where the recovery middleware cannot catch it.
func runCheck(ctx context.Context, check Check) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("check %s panicked: %v", check.Name, r)
		}
	}()
	if check.Check == nil {
		return fmt.Errorf("check %s has no function", check.Name)
	}
	if err := check.Check(ctx); err != nil {
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			return fmt.Errorf("%w: %w", ctx.Err(), err)
		}
		return err
	}
	return nil
}
