package main

import (
	"fmt"
	"time"

	"github.com/kiln-dev/kiln/internal/conformance"
)

// driverCheck runs the http driver's conformance checks against a
// partner's own service and prints the table; any failure makes the exit
// code 1, so a partner's CI can gate on it.
func (c *cli) driverCheck(args []string) error {
	fs, s := c.flags("driver-check", "[--secret S] [--plan test] [--new-plan basic] URL")
	secret := fs.String("secret", "", "the signing secret (default: RESOURCE_HTTP_SECRET)")
	plan := fs.String("plan", "test", "plan to create the resource on")
	newPlan := fs.String("new-plan", "basic", "plan to change to")
	timeout := fs.Duration("timeout", 60*time.Second, "how long a 202 may take to become a resource")
	pos, err := parse(fs, s, args)
	if err != nil {
		return err
	}
	url := ""
	switch len(pos) {
	case 0:
		url = s.env("RESOURCE_HTTP_URL")
	case 1:
		url = pos[0]
	default:
		return usageError{"driver-check takes one URL"}
	}
	if url == "" {
		return usageError{"give the service's URL (Kiln's RESOURCE_HTTP_URL)"}
	}
	key := first(*secret, s.env("RESOURCE_HTTP_SECRET"))
	if key == "" {
		return usageError{"no signing secret: pass --secret or set RESOURCE_HTTP_SECRET"}
	}
	fmt.Fprintf(c.stderr, "checking the partner service at %s as Kiln's http driver would call it\n", url)
	report := conformance.RunDriver(c.ctx, conformance.DriverOptions{
		URL:      url,
		Secret:   key,
		Plan:     *plan,
		NewPlan:  *newPlan,
		Timeout:  *timeout,
		OnResult: c.progress,
	})
	return c.verdict(report)
}
