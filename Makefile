# Kiln. On a fresh Debian machine with Go, `make dev` runs Kiln locally with
# everything it needs and `make test` runs the whole suite against real
# Postgres and Redis; each first does its own set-up (scripts/setup.sh:
# starts or installs what is missing, or prints the apt-get line).
GO ?= go
export PATH := /usr/local/go/bin:$(PATH)

.PHONY: build test vet dev bench services setup-test setup-dev clean

build:
	$(GO) build -o bin/ ./cmd/...

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l cmd internal)" || { echo "gofmt needed:"; gofmt -l cmd internal; exit 1; }

# scripts/test.sh: the 1 MB check, the tests (two packages at a time: the
# machine has 2 cores; each test owns its database and its Redis), and a
# summary of what was skipped and whether your Redis was left alone.
test: setup-test vet build
	@GO="$(GO)" bash scripts/test.sh

setup-test:
	@bash scripts/setup.sh test

setup-dev:
	@bash scripts/setup.sh dev

services: setup-test

dev: setup-dev build
	bin/kiln-dev

bench: build
	bin/kiln-bench

clean:
	rm -rf bin .dev
