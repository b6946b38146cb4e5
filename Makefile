# Kiln. `make dev` runs Kiln locally with everything it needs; `make test`
# runs the whole suite against real Postgres and Redis.
GO ?= go
export PATH := /usr/local/go/bin:$(PATH)

.PHONY: build test vet dev bench chaos services clean

build:
	$(GO) build -o bin/ ./cmd/...

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l cmd internal)" || { echo "gofmt needed:"; gofmt -l cmd internal; exit 1; }

# Packages run two at a time (the machine has 2 cores); each test gets its own
# database and Redis index, so they do not collide.
test: vet build
	$(GO) test -count=1 -p 2 -timeout 12m ./...

services:
	bash scripts/services.sh

dev: build
	bin/kiln-dev

bench: build
	bin/kiln-bench

# The chaos run (docs/reliability.md): two rounds (plain Redis, Sentinel) of
# provisions, plan changes, rotations and deprovisions under killed
# processes, failovers and dropped connections; exits 1 naming any violated
# invariant. SEED=n reproduces a run's choices. Under 10 minutes.
chaos: build
	bin/kiln-chaos -bin bin $(if $(SEED),-seed $(SEED))

clean:
	rm -rf bin .dev
