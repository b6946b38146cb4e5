// Package e2e holds Kiln's end-to-end tests: they build the real release,
// web and worker binaries, run them as processes against a real Postgres
// database and a private Redis server, and play Heroku with the simulator.
package e2e
