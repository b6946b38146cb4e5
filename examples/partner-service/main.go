// Command partner-service is a reference partner service for Kiln's http
// resource driver (RESOURCE_DRIVER=http; docs/http-driver.md): the admin
// API a partner's own product exposes so that Kiln can make it a Heroku
// add-on. It keeps its resources in memory, which a real service would
// keep in its database; everything else is what a real one must do:
//
//   - refuse any request whose Kiln-Signature is missing, wrong, or older
//     (or newer) than five minutes, comparing in constant time;
//   - create idempotently by id: a repeated POST /resources for a live id
//     answers the same resource (Kiln retries with the same
//     Idempotency-Key after timeouts and crashes);
//   - answer 202 while a resource is still being made
//     (PARTNER_CREATE_DELAY) and 200 with its config to GET once it is;
//   - refuse a plan it does not sell with 422 and a message the customer
//     will read in Heroku;
//   - treat DELETE of an unknown or deleted id as done (404).
//
// It depends on the standard library only, so it can be copied out of Kiln.
//
// Environment: PORT (default 8080), KILN_SIGNING_SECRET (required; Kiln's
// RESOURCE_HTTP_SECRET; a comma-separated list accepts any, for changing
// it), PARTNER_PUBLIC_URL (the base of customers' URLs, default
// http://localhost:$PORT), PARTNER_PLANS (plans sold, default
// test,basic,pro), PARTNER_CREATE_DELAY (Go duration, default 0).
package main

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "partner-service:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	log := slog.New(slog.NewTextHandler(stdout, nil))
	port := getenv("PORT")
	if port == "" {
		port = "8080"
	}
	var secrets []string
	for _, s := range strings.Split(getenv("KILN_SIGNING_SECRET"), ",") {
		if s = strings.TrimSpace(s); s != "" {
			secrets = append(secrets, s)
		}
	}
	if len(secrets) == 0 {
		return errors.New("KILN_SIGNING_SECRET is required (Kiln's RESOURCE_HTTP_SECRET)")
	}
	public := getenv("PARTNER_PUBLIC_URL")
	if public == "" {
		public = "http://localhost:" + port
	}
	pub, err := url.Parse(public)
	if err != nil || pub.Host == "" {
		return fmt.Errorf("PARTNER_PUBLIC_URL %q is not an absolute URL", public)
	}
	plans := []string{"test", "basic", "pro"}
	if v := getenv("PARTNER_PLANS"); v != "" {
		plans = strings.Split(v, ",")
	}
	var delay time.Duration
	if v := getenv("PARTNER_CREATE_DELAY"); v != "" {
		if delay, err = time.ParseDuration(v); err != nil {
			return fmt.Errorf("PARTNER_CREATE_DELAY: %w", err)
		}
	}
	svc := &service{secrets: secrets, public: pub, plans: plans, delay: delay, log: log, now: time.Now, resources: map[string]*resource{}}
	ln, err := net.Listen("tcp", ":"+port)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: svc.routes(), ReadHeaderTimeout: 10 * time.Second}
	log.Info("partner service listening", "port", port, "plans", strings.Join(plans, ","), "create_delay", delay)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// tolerance is how far a signature's timestamp may be from now.
const tolerance = 5 * time.Minute

// maxBody caps request bodies.
const maxBody = 64 << 10

// resource is one customer's resource.
type resource struct {
	ID      string
	Plan    string
	Region  string
	Key     string // the customer's API key
	ReadyAt time.Time
}

type service struct {
	secrets []string
	public  *url.URL
	plans   []string
	delay   time.Duration
	log     *slog.Logger
	now     func() time.Time

	mu        sync.Mutex
	resources map[string]*resource // live resources by Kiln's id
}

func (s *service) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /resources", s.create)
	mux.HandleFunc("GET /resources/{id}", s.get)
	mux.HandleFunc("PUT /resources/{id}", s.changePlan)
	mux.HandleFunc("DELETE /resources/{id}", s.destroy)
	mux.HandleFunc("POST /resources/{id}/actions/rotate-credentials", s.rotate)
	return s.verify(mux)
}

// verify refuses every request that Kiln did not sign within the last
// five minutes. The body is read here (the signature covers it) and put
// back for the handler.
func (s *service) verify(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			reply(w, http.StatusRequestEntityTooLarge, map[string]string{"message": "Request body too large."})
			return
		}
		if err := s.checkSignature(r.Header.Get("Kiln-Signature"), r.Method, r.URL.EscapedPath(), body); err != nil {
			s.log.Warn("refused a request", "method", r.Method, "path", r.URL.Path, "reason", err)
			reply(w, http.StatusUnauthorized, map[string]string{"message": "Invalid Kiln-Signature: " + err.Error() + "."})
			return
		}
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		s.log.Info("request", "method", r.Method, "path", r.URL.Path, "idempotency_key", r.Header.Get("Idempotency-Key"))
		next.ServeHTTP(w, r)
	})
}

// checkSignature verifies "t=<unix>,v1=<hex>": HMAC-SHA256 over
// t + "." + METHOD + " " + PATH + "." + body.
func (s *service) checkSignature(header, method, path string, body []byte) error {
	if header == "" {
		return errors.New("missing")
	}
	var t string
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			t = v
		case "v1":
			if b, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, b)
			}
		}
	}
	ts, err := strconv.ParseInt(t, 10, 64)
	if err != nil || len(sigs) == 0 {
		return errors.New("malformed")
	}
	if age := s.now().Sub(time.Unix(ts, 0)); age > tolerance || age < -tolerance {
		return errors.New("timestamp outside the 5-minute tolerance")
	}
	payload := append([]byte(t+"."+method+" "+path+"."), body...)
	for _, secret := range s.secrets {
		m := hmac.New(sha256.New, []byte(secret))
		m.Write(payload)
		want := m.Sum(nil)
		for _, sig := range sigs {
			if hmac.Equal(sig, want) {
				return nil
			}
		}
	}
	return errors.New("no match")
}

var idPattern = regexp.MustCompile(`^[0-9a-fA-F-]{36}$`)

func (s *service) create(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ID      string            `json:"id"`
		Plan    string            `json:"plan"`
		Region  string            `json:"region"`
		Options map[string]string `json:"options"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || !idPattern.MatchString(req.ID) {
		reply(w, http.StatusBadRequest, map[string]string{"message": "Want JSON with an id (a uuid) and a plan."})
		return
	}
	if !slices.Contains(s.plans, req.Plan) {
		reply(w, http.StatusUnprocessableEntity, map[string]string{"message": fmt.Sprintf("This service does not sell plan %q.", req.Plan)})
		return
	}
	s.mu.Lock()
	res, ok := s.resources[req.ID]
	if !ok {
		res = &resource{ID: req.ID, Plan: req.Plan, Region: req.Region, Key: newKey(), ReadyAt: s.now().Add(s.delay)}
		s.resources[req.ID] = res
	}
	cp := *res
	s.mu.Unlock()
	if !ok {
		s.log.Info("resource created", "id", req.ID, "plan", req.Plan)
	}
	s.answer(w, &cp, http.StatusCreated)
}

func (s *service) get(w http.ResponseWriter, r *http.Request) {
	res, ok := s.lookup(r.PathValue("id"))
	if !ok {
		reply(w, http.StatusNotFound, map[string]string{"message": "No such resource."})
		return
	}
	s.answer(w, res, http.StatusOK)
}

// answer sends the resource's config, or 202 while it is being made.
func (s *service) answer(w http.ResponseWriter, res *resource, ready int) {
	if wait := res.ReadyAt.Sub(s.now()); wait > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)+1))
		reply(w, http.StatusAccepted, map[string]string{"message": "The resource is being created."})
		return
	}
	reply(w, ready, map[string]any{"config": s.config(res)})
}

func (s *service) changePlan(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Plan string `json:"plan"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Plan == "" {
		reply(w, http.StatusBadRequest, map[string]string{"message": "Want JSON with a plan."})
		return
	}
	if !slices.Contains(s.plans, req.Plan) {
		reply(w, http.StatusUnprocessableEntity, map[string]string{"message": fmt.Sprintf("This service does not sell plan %q; choose one of %s.", req.Plan, strings.Join(s.plans, ", "))})
		return
	}
	s.mu.Lock()
	res, ok := s.resources[r.PathValue("id")]
	if ok {
		res.Plan = req.Plan
	}
	s.mu.Unlock()
	if !ok {
		reply(w, http.StatusNotFound, map[string]string{"message": "No such resource."})
		return
	}
	reply(w, http.StatusOK, map[string]string{"message": "Plan changed to " + req.Plan + "."})
}

func (s *service) destroy(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.mu.Lock()
	_, ok := s.resources[id]
	delete(s.resources, id)
	s.mu.Unlock()
	if !ok {
		reply(w, http.StatusNotFound, map[string]string{"message": "No such resource."})
		return
	}
	s.log.Info("resource deleted", "id", id)
	w.WriteHeader(http.StatusNoContent)
}

func (s *service) rotate(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	res, ok := s.resources[r.PathValue("id")]
	if ok {
		res.Key = newKey()
	}
	var cp resource
	if ok {
		cp = *res
	}
	s.mu.Unlock()
	if !ok {
		reply(w, http.StatusNotFound, map[string]string{"message": "No such resource."})
		return
	}
	reply(w, http.StatusOK, map[string]any{"config": s.config(&cp)})
}

func (s *service) lookup(id string) (*resource, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	res, ok := s.resources[id]
	if !ok {
		return nil, false
	}
	cp := *res
	return &cp, true
}

// config is what the customer's app gets, without Kiln's prefix.
func (s *service) config(res *resource) map[string]string {
	u := *s.public
	u.User = url.UserPassword(res.ID[:8], res.Key)
	u.Path = "/v1"
	return map[string]string{"URL": u.String(), "API_KEY": res.Key}
}

func newKey() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
