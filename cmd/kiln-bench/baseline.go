package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"github.com/labstack/echo/v4"

	"github.com/kiln-dev/kiln/internal/faultkit"
)

// baselinePool is the baseline's Postgres pool: the same size as Kiln's
// store (internal/postgres maxOpenConns), so the pool is not what differs.
const baselinePool = 8

// runBaseline is `kiln-bench baseline`: the least an add-on provider on
// Kiln's stack can do per provision call — an Echo handler that reads the
// uuid, does one Postgres insert and one asynq enqueue, and answers 202.
// No auth, no validation, no encryption, no audit trail, no request log.
// Its throughput on this machine is the ceiling Kiln's accept figure is
// measured against.
func runBaseline(ctx context.Context, getenv func(string) string) error {
	db, err := sql.Open("pgx", getenv("DATABASE_URL"))
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(baselinePool)
	db.SetMaxIdleConns(baselinePool)
	ropt, err := asynq.ParseRedisURI(getenv("REDIS_URL"))
	if err != nil {
		return err
	}
	q := asynq.NewClient(ropt)
	defer q.Close()

	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.POST("/heroku/resources", func(c echo.Context) error {
		body, err := io.ReadAll(c.Request().Body)
		if err != nil {
			return err
		}
		var in struct {
			UUID string `json:"uuid"`
		}
		if err := json.Unmarshal(body, &in); err != nil {
			return echo.NewHTTPError(http.StatusBadRequest, "not JSON")
		}
		ctx := c.Request().Context()
		if _, err := db.ExecContext(ctx, "INSERT INTO bench_baseline (id, body) VALUES ($1, $2)", in.UUID, body); err != nil {
			return err
		}
		payload, _ := json.Marshal(map[string]string{"addon_id": in.UUID})
		if _, err := q.EnqueueContext(ctx, asynq.NewTask("bench:baseline", payload), asynq.Queue("baseline"), asynq.TaskID(in.UUID)); err != nil {
			return err
		}
		return c.JSON(http.StatusAccepted, map[string]string{"id": in.UUID, "message": "accepted"})
	})
	e.GET("/healthz", func(c echo.Context) error { return c.NoContent(http.StatusOK) })

	ln, err := net.Listen("tcp", "127.0.0.1:"+getenv("PORT"))
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: e, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// startBaseline runs `kiln-bench baseline` as a child process, like bin/web,
// against the stack's database and a Redis database index the worker never
// reads, and returns its URL and a stop function.
func (st *stack) startBaseline(ctx context.Context) (string, func() error, error) {
	self, err := os.Executable()
	if err != nil {
		return "", nil, err
	}
	port, err := faultkit.FreePort()
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(self, "baseline")
	cmd.Env = append(os.Environ(),
		"PORT="+strconv.Itoa(port),
		"DATABASE_URL="+st.database.URL,
		"REDIS_URL=redis://"+st.redisAddr+"/1",
	)
	out, err := os.CreateTemp(st.logDir, "baseline-*.log")
	if err != nil {
		return "", nil, err
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = faultkit.SysProcAttr()
	if err := cmd.Start(); err != nil {
		out.Close()
		return "", nil, fmt.Errorf("start baseline: %w", err)
	}
	st.baselinePid = cmd.Process.Pid
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stop := func() error {
		defer out.Close()
		st.baselinePid = 0
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case err := <-done:
			return err
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			return fmt.Errorf("baseline did not stop")
		}
	}
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	err = waitFor(ctx, 10*time.Second, "baseline answers", func() bool {
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if err != nil {
		_ = stop()
		b, _ := os.ReadFile(out.Name())
		return "", nil, fmt.Errorf("%w\n%s", err, b)
	}
	return base, stop, nil
}
