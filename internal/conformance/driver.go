package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	httpdriver "github.com/kiln-dev/kiln/internal/drivers/http"
)

// This file is the conformance run for a partner's own service behind the
// http resource driver (`kiln-heroku driver-check URL`): it calls the
// service as Kiln does, signed with the shared secret, and checks what Kiln
// relies on, including that the service refuses what Kiln never sends.

// DriverOptions say which partner service to check.
type DriverOptions struct {
	// URL is the service's base URL (Kiln's RESOURCE_HTTP_URL).
	URL string
	// Secret is the signing key (Kiln's RESOURCE_HTTP_SECRET).
	Secret string
	// Plan is the plan created (default "test") and NewPlan the one the
	// plan change moves to (default "basic").
	Plan    string
	NewPlan string
	// Timeout bounds the wait for a 202 to become a resource (default 60 s).
	Timeout time.Duration
	// Client sends the requests; nil means one with a 10 s timeout.
	Client *http.Client
	// OnResult, when set, sees each result as soon as it is known.
	OnResult func(Result)
}

// The names of the driver checks, in the order they run.
const (
	DriverCreate          = "create: a signed POST /resources is accepted (200/201, or 202 then GET 200)"
	DriverConfig          = "create: config has URL; names are [A-Z0-9_] without the prefix"
	DriverCreateRepeat    = "create: a repeat with the same Idempotency-Key answers the same resource"
	DriverCreateNewKey    = "create: idempotent by id (a new Idempotency-Key, same resource)"
	DriverGet             = "get: GET /resources/{id} answers 200 with the config"
	DriverUnsigned        = "signature: an unsigned request is refused (401/403) and creates nothing"
	DriverStale           = "signature: a 10-minute-old signature is refused (401/403)"
	DriverWrongSecret     = "signature: a signature with another secret is refused (401/403)"
	DriverTampered        = "signature: a signature over another body is refused (401/403)"
	DriverUnsignedDelete  = "signature: an unsigned DELETE is refused and deletes nothing"
	DriverPlanChange      = "plan change: PUT /resources/{id} answers 200"
	DriverRotate          = "rotate: 200 with new config, or 404/501 (does not rotate)"
	DriverDelete          = "delete: DELETE /resources/{id} answers 2xx"
	DriverGoneAfterDelete = "delete: GET after delete answers 404/410"
	DriverDeleteRepeat    = "delete: a repeat answers 2xx/404/410"
	DriverDeleteUnknown   = "delete: an unknown id answers 2xx/404/410"
)

var suffixPattern = regexp.MustCompile(`^[0-9A-Z_]+$`)

// driverRun is one conformance run against a service.
type driverRun struct {
	*runner
	d      DriverOptions
	base   *url.URL
	client *http.Client
}

// RunDriver performs every driver check and returns the report; it never
// stops early. The resource it creates is deleted at the end.
func RunDriver(ctx context.Context, o DriverOptions) *Report {
	if o.Plan == "" {
		o.Plan = "test"
	}
	if o.NewPlan == "" {
		o.NewPlan = "basic"
	}
	if o.Timeout <= 0 {
		o.Timeout = 60 * time.Second
	}
	id := uuid.NewString()
	r := &driverRun{runner: &runner{o: Options{OnResult: o.OnResult}, report: &Report{AddonID: id}}, d: o, client: o.Client}
	if r.client == nil {
		r.client = &http.Client{Timeout: 10 * time.Second}
	}
	u, err := url.Parse(strings.TrimRight(o.URL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		r.add(DriverCreate, Fail, fmt.Sprintf("%q is not an http(s) URL", o.URL))
		return r.report
	}
	r.base = u

	cfg, ok := r.create(ctx, id)
	if ok {
		r.get(ctx, id, cfg)
	}
	r.signatures(ctx, id, ok)
	if ok {
		r.check(DriverPlanChange, func() (string, error) {
			a, err := r.send(ctx, "PUT", "/resources/"+id, "kiln-check-plan-"+id, map[string]string{"plan": r.d.NewPlan}, signed)
			if err != nil {
				return "", err
			}
			if a.status != http.StatusOK {
				return "", fmt.Errorf("answered %s; want 200", a)
			}
			return a.String(), nil
		})
		r.check(DriverRotate, func() (string, error) {
			a, err := r.send(ctx, "POST", "/resources/"+id+"/actions/rotate-credentials", "kiln-check-rotate-"+id, map[string]string{}, signed)
			if err != nil {
				return "", err
			}
			switch {
			case a.status == http.StatusNotFound || a.status == http.StatusNotImplemented:
				return fmt.Sprintf("%s: the service does not rotate credentials", a), nil
			case a.status != http.StatusOK:
				return "", fmt.Errorf("answered %s; want 200 with config, or 404/501", a)
			case a.body.Config["URL"] == "":
				return "", fmt.Errorf("answered 200 without config.URL")
			}
			return a.String(), nil
		})
	} else {
		r.skip("create failed", DriverPlanChange, DriverRotate)
	}
	r.deletes(ctx, id, ok)
	return r.report
}

// signing says how a request is signed.
type signing int

const (
	signed signing = iota
	unsigned
	stale
	wrongSecret
	otherBody
)

// driverAnswer is one answer of the service.
type driverAnswer struct {
	status int
	body   struct {
		Config  map[string]string `json:"config"`
		Message string            `json:"message"`
	}
	raw string
}

func (a *driverAnswer) String() string {
	s := fmt.Sprintf("%d", a.status)
	if a.body.Message != "" {
		s += " " + a.body.Message
	}
	return s
}

// send makes one request to the service, signed as sign says.
func (r *driverRun) send(ctx context.Context, method, path, key string, body any, sign signing) (*driverAnswer, error) {
	var raw []byte
	if body != nil {
		raw, _ = json.Marshal(body)
	}
	target := r.base.EscapedPath() + path
	req, err := http.NewRequestWithContext(ctx, method, r.base.Scheme+"://"+r.base.Host+target, bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	if body == nil {
		req.Body, req.ContentLength = http.NoBody, 0
	} else {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set(httpdriver.IdempotencyHeader, key)
	now := time.Now()
	switch sign {
	case signed:
		req.Header.Set(httpdriver.SignatureHeader, httpdriver.Sign(r.d.Secret, now, method, target, raw))
	case stale:
		req.Header.Set(httpdriver.SignatureHeader, httpdriver.Sign(r.d.Secret, now.Add(-2*httpdriver.Tolerance), method, target, raw))
	case wrongSecret:
		req.Header.Set(httpdriver.SignatureHeader, httpdriver.Sign(r.d.Secret+"-not-the-secret", now, method, target, raw))
	case otherBody:
		req.Header.Set(httpdriver.SignatureHeader, httpdriver.Sign(r.d.Secret, now, method, target, append(raw, ' ')))
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	a := &driverAnswer{status: resp.StatusCode, raw: string(b)}
	_ = json.Unmarshal(b, &a.body)
	return a, nil
}

func (r *driverRun) createBody(id string) map[string]any {
	return map[string]any{"id": id, "name": "kiln-driver-check", "plan": r.d.Plan, "region": "amazon-web-services::us-east-1",
		"options": map[string]string{}, "app": map[string]string{"name": "kiln-driver-check"}}
}

// createAndWait POSTs a create and, on 202, polls GET until it answers 200.
func (r *driverRun) createAndWait(ctx context.Context, id, key string) (map[string]string, string, error) {
	a, err := r.send(ctx, "POST", "/resources", key, r.createBody(id), signed)
	if err != nil {
		return nil, "", err
	}
	switch {
	case a.status == http.StatusOK || a.status == http.StatusCreated:
		return a.body.Config, a.String(), nil
	case a.status != http.StatusAccepted:
		return nil, "", fmt.Errorf("answered %s; want 200, 201 or 202", a)
	}
	deadline := time.Now().Add(r.d.Timeout)
	wait := 250 * time.Millisecond
	for polls := 1; ; polls++ {
		if time.Now().After(deadline) {
			return nil, "", fmt.Errorf("answered 202, and GET still answered %s after %s", a, r.d.Timeout)
		}
		select {
		case <-ctx.Done():
			return nil, "", ctx.Err()
		case <-time.After(wait):
		}
		wait = min(wait*2, 5*time.Second)
		if a, err = r.send(ctx, "GET", "/resources/"+id, key, nil, signed); err != nil {
			return nil, "", err
		}
		switch a.status {
		case http.StatusOK:
			return a.body.Config, fmt.Sprintf("202, then GET 200 after %d polls", polls), nil
		case http.StatusAccepted:
		default:
			return nil, "", fmt.Errorf("answered 202, then GET answered %s; want 202 until ready, then 200", a)
		}
	}
}

func (r *driverRun) create(ctx context.Context, id string) (map[string]string, bool) {
	var cfg map[string]string
	if !r.check(DriverCreate, func() (detail string, err error) {
		cfg, detail, err = r.createAndWait(ctx, id, "kiln-check-create-"+id)
		return detail, err
	}) {
		r.skip("create failed", DriverConfig, DriverCreateRepeat, DriverCreateNewKey, DriverGet)
		return nil, false
	}
	ok := r.check(DriverConfig, func() (string, error) {
		if cfg["URL"] == "" {
			return "", fmt.Errorf("config has no URL: %v", keys(cfg))
		}
		for k := range cfg {
			if !suffixPattern.MatchString(k) {
				return "", fmt.Errorf("config var %q: want upper-case letters, digits and _, without Kiln's prefix", k)
			}
		}
		return strings.Join(keys(cfg), ", "), nil
	})
	for _, c := range []struct{ name, key string }{
		{DriverCreateRepeat, "kiln-check-create-" + id},
		{DriverCreateNewKey, "kiln-check-create-again-" + id},
	} {
		r.check(c.name, func() (string, error) {
			again, detail, err := r.createAndWait(ctx, id, c.key)
			if err != nil {
				return "", err
			}
			if again["URL"] != cfg["URL"] {
				return "", fmt.Errorf("answered another resource (a different URL): a retry after a timeout would leak a resource")
			}
			return detail, nil
		})
	}
	return cfg, ok
}

func (r *driverRun) get(ctx context.Context, id string, cfg map[string]string) {
	r.check(DriverGet, func() (string, error) {
		a, err := r.send(ctx, "GET", "/resources/"+id, "kiln-check-get-"+id, nil, signed)
		if err != nil {
			return "", err
		}
		if a.status != http.StatusOK || a.body.Config["URL"] != cfg["URL"] {
			return "", fmt.Errorf("answered %s with config %v; want 200 and the created config", a, keys(a.body.Config))
		}
		return a.String(), nil
	})
}

// refused reports whether a is the refusal of a badly signed request.
func refused(a *driverAnswer, err error) (string, error) {
	if err != nil {
		return "", err
	}
	if a.status != http.StatusUnauthorized && a.status != http.StatusForbidden {
		return "", fmt.Errorf("answered %s; want 401 or 403: the service must check Kiln-Signature", a)
	}
	return a.String(), nil
}

func (r *driverRun) signatures(ctx context.Context, id string, created bool) {
	probe := uuid.NewString()
	r.check(DriverUnsigned, func() (string, error) {
		detail, err := refused(r.send(ctx, "POST", "/resources", "kiln-check-unsigned-"+probe, r.createBody(probe), unsigned))
		if err != nil {
			return "", err
		}
		a, err := r.send(ctx, "GET", "/resources/"+probe, "kiln-check-get-"+probe, nil, signed)
		if err != nil {
			return "", err
		}
		if a.status/100 == 2 {
			return "", fmt.Errorf("refused, but GET of its id answers %s: the unsigned request created it", a)
		}
		return detail, nil
	})
	for _, c := range []struct {
		name string
		how  signing
	}{{DriverStale, stale}, {DriverWrongSecret, wrongSecret}, {DriverTampered, otherBody}} {
		r.check(c.name, func() (string, error) {
			p := uuid.NewString()
			defer r.send(ctx, "DELETE", "/resources/"+p, "kiln-check-cleanup-"+p, nil, signed) //nolint:errcheck // cleanup of a service that accepted it
			return refused(r.send(ctx, "POST", "/resources", "kiln-check-"+p, r.createBody(p), c.how))
		})
	}
	if !created {
		r.skip("create failed", DriverUnsignedDelete)
		return
	}
	r.check(DriverUnsignedDelete, func() (string, error) {
		detail, err := refused(r.send(ctx, "DELETE", "/resources/"+id, "kiln-check-unsigned-delete-"+id, nil, unsigned))
		if err != nil {
			// It may have deleted the resource: make it again, so the
			// checks after this one test what they name.
			_, _, _ = r.createAndWait(ctx, id, "kiln-check-create-again-"+id)
			return "", err
		}
		a, err := r.send(ctx, "GET", "/resources/"+id, "kiln-check-get-"+id, nil, signed)
		if err != nil {
			return "", err
		}
		if a.status != http.StatusOK {
			return "", fmt.Errorf("refused, but GET now answers %s: the unsigned DELETE deleted it", a)
		}
		return detail, nil
	})
	// A service that created the unsigned probe keeps nothing behind.
	r.send(ctx, "DELETE", "/resources/"+probe, "kiln-check-cleanup-"+probe, nil, signed) //nolint:errcheck // best effort
}

func (r *driverRun) deletes(ctx context.Context, id string, created bool) {
	gone := func(a *driverAnswer, err error) (string, error) {
		if err != nil {
			return "", err
		}
		if a.status/100 != 2 && a.status != http.StatusNotFound && a.status != http.StatusGone {
			return "", fmt.Errorf("answered %s; want 2xx, 404 or 410", a)
		}
		return a.String(), nil
	}
	if created {
		r.check(DriverDelete, func() (string, error) {
			a, err := r.send(ctx, "DELETE", "/resources/"+id, "kiln-check-delete-"+id, nil, signed)
			if err != nil {
				return "", err
			}
			if a.status/100 != 2 {
				return "", fmt.Errorf("answered %s; want 2xx", a)
			}
			return a.String(), nil
		})
		r.check(DriverGoneAfterDelete, func() (string, error) {
			a, err := r.send(ctx, "GET", "/resources/"+id, "kiln-check-get-"+id, nil, signed)
			if err != nil {
				return "", err
			}
			if a.status != http.StatusNotFound && a.status != http.StatusGone {
				return "", fmt.Errorf("answered %s; want 404 or 410", a)
			}
			return a.String(), nil
		})
		r.check(DriverDeleteRepeat, func() (string, error) {
			return gone(r.send(ctx, "DELETE", "/resources/"+id, "kiln-check-delete-"+id, nil, signed))
		})
	} else {
		r.skip("create failed", DriverDelete, DriverGoneAfterDelete, DriverDeleteRepeat)
	}
	unknown := uuid.NewString()
	r.check(DriverDeleteUnknown, func() (string, error) {
		return gone(r.send(ctx, "DELETE", "/resources/"+unknown, "kiln-check-delete-"+unknown, nil, signed))
	})
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
