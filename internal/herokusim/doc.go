// Package herokusim is a faithful in-process stand-in for the two Heroku
// services an add-on provider calls: id.heroku.com (the OAuth token endpoint)
// and the Platform API for Partners on api.heroku.com. It is the only Heroku
// fake Kiln's tests may use, so it enforces what the real services enforce
// (single-use grant codes that die after five minutes, the client secret, the
// versioned Accept header, bearer tokens bound to one add-on, token expiry,
// a per-user rate-limit bucket) and answers with Heroku's status codes and
// {"id", "message"} error bodies. Tests, local development (the kiln-heroku
// command serves it on a port) and benchmarks share it, so it is safe for
// concurrent use and cheap per request.
//
// A Sim is an http.Handler serving both hosts on one origin:
//
//	POST  /oauth/token                      grant exchange and refresh (form body)
//	GET   /addons/{id}                      add-on info
//	PATCH /addons/{id}/config               set or (null value) unset config vars
//	POST  /addons/{id}/actions/provision    mark provisioned (idempotent)
//	POST  /addons/{id}/actions/deprovision  mark deprovisioned (idempotent)
//
// Add-ons are also addressable by name, as on the real API. Every answer
// carries Request-Id and RateLimit-Remaining.
//
// Where no public source settles Heroku's behaviour the simulator picks the
// strict reading and says so (UNCONFIRMED) next to the code; what was
// confirmed is noted with its source.
//
// # Driving it from Go
//
// New builds a simulator; NewServer also starts an httptest.Server and
// registers cleanup in the right order. NewAddon registers an add-on in state
// provisioning and returns the OAuth grant Heroku would send with the
// provision request. Calls returns the ordered log of what reached the
// simulator, Addon the add-on as Heroku sees it, and Inject arranges faults:
// an error status (with Retry-After), a delay, or a hold that blocks requests
// until the test releases them (to kill a worker while Heroku "holds" an
// action). Held or delayed requests are processed once released, even if the
// caller has gone away, as a real server that already received them would.
//
// # Driving it over HTTP
//
// A simulator running in another process (kiln-heroku) is driven through a
// small control surface under /_sim/. It has no authentication: never expose
// it beyond loopback.
//
//	POST   /_sim/addons                   {"id": "<uuid>", "plan": "test"} (both optional) → 201
//	                                      {"id", "name", "grant": {"code", "expires_at", "type"}}
//	GET    /_sim/addons                   every add-on held, oldest first → [{"id", "name", "state", "plan", "config"}]
//	GET    /_sim/addons/{id}              → {"id", "name", "state", "plan", "config"}
//	PATCH  /_sim/addons/{id}              {"plan", "state"} change Heroku's own record, as Heroku
//	                                      does when it sends a plan change or deprovision → 200
//	POST   /_sim/addons/{id}/expire-tokens  expire the add-on's access token → 204
//	GET    /_sim/calls                    → [{"kind", "addon_id", "at", "status", "request_id"}]
//	POST   /_sim/faults                   {"kind", "addon_id", "status", "retry_after",
//	                                       "message", "times", "delay": "2s", "hold": true} → 204
//	DELETE /_sim/faults                   clear all faults and release held requests → 204
//	POST   /_sim/release                  release requests held by "hold": true faults → 204
//
// The grant's expires_at uses Heroku's provision-request format
// ("2006-01-02T15:04:05-0700"), so a CLI can paste it into a provision body.
package herokusim
