package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/kiln-dev/kiln/internal/web"
)

// debugServer serves Go's profiler for the worker on WORKER_DEBUG_ADDR. The
// worker has no HTTP port of its own, so without it a slow or bloated worker
// dyno could only be guessed at; with it, `go tool pprof` reaches the live
// process (through `heroku ps:forward` or on the same host), behind the same
// admin:$ADMIN_PASSWORD Basic auth as the web process's /admin pages.
type debugServer struct {
	ln  net.Listener
	srv *http.Server
	log *slog.Logger
}

// listenDebug opens the listener at once, so a taken port stops the worker
// at start-up with a clear message instead of failing later.
func listenDebug(addr, password string, guard *web.AdminGuard, log *slog.Logger) (*debugServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("WORKER_DEBUG_ADDR: %w", err)
	}
	return &debugServer{
		ln:  ln,
		srv: &http.Server{Handler: debugHandler(password, guard), ReadHeaderTimeout: 10 * time.Second},
		log: log,
	}, nil
}

// serve answers until ctx ends.
func (d *debugServer) serve(ctx context.Context) error {
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = d.srv.Shutdown(sctx)
	}()
	d.log.Info("debug listener serving pprof under /debug/pprof/", "addr", d.ln.Addr().String())
	if err := d.srv.Serve(d.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("debug listener: %w", err)
	}
	return nil
}

// debugHandler is net/http/pprof behind Basic auth admin:password and the
// admin guessing limit every admin door shares (guard; nil: one of its own).
// Both halves are compared in constant time; an empty password admits
// nobody.
func debugHandler(password string, guard *web.AdminGuard) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	if guard == nil {
		guard = web.NewAdminGuard(nil, web.RateLimit{}, nil)
	}
	return guard.Handler(password, mux)
}
