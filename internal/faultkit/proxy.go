// Package faultkit injects real faults between Kiln and what it depends on,
// for the chaos run and failure tests: TCP proxies (Shopify's toxiproxy,
// embedded as a library, no daemon) that add latency, reset every
// connection or swallow all traffic, real redis-server and redis-sentinel
// processes that can be killed and restarted, and a Postgres database of
// the run's own whose sessions can all be ended at once. Nothing here is a
// mock: Kiln's processes talk to real Postgres and Redis through real
// sockets that really stall or drop. The benchmark (kiln-bench) starts its
// private Redis and database with it too.
package faultkit

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Kit owns the proxies of one run.
type Kit struct {
	mu      sync.Mutex
	server  *toxiproxy.ApiServer
	proxies []*Proxy
}

// New makes an empty kit; its proxies log nothing.
func New() *Kit {
	m := toxiproxy.NewMetricsContainer(prometheus.NewRegistry())
	return &Kit{server: toxiproxy.NewServer(m, zerolog.Nop())}
}

// Proxy is one TCP proxy in front of a dependency.
type Proxy struct {
	mu   sync.Mutex
	name string
	p    *toxiproxy.Proxy
}

// Proxy starts a proxy on a free loopback port that forwards to upstream
// (host:port).
func (k *Kit) Proxy(name, upstream string) (*Proxy, error) {
	p := toxiproxy.NewProxy(k.server, name, "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		return nil, fmt.Errorf("faultkit: start proxy %s: %w", name, err)
	}
	px := &Proxy{name: name, p: p}
	k.mu.Lock()
	k.proxies = append(k.proxies, px)
	k.mu.Unlock()
	return px, nil
}

// Close stops every proxy and closes their connections.
func (k *Kit) Close() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, p := range k.proxies {
		p.p.Stop()
	}
	k.proxies = nil
}

// Name is the proxy's name, as fault tables print it.
func (p *Proxy) Name() string { return p.name }

// Addr is where clients connect instead of the upstream (127.0.0.1:port).
func (p *Proxy) Addr() string { return p.p.Listen }

// Port is Addr's port.
func (p *Proxy) Port() string {
	_, port, _ := net.SplitHostPort(p.Addr())
	return port
}

func (p *Proxy) add(name, typ, stream string, attrs string) error {
	body := fmt.Sprintf(`{"name":%q,"type":%q,"stream":%q,"toxicity":1,"attributes":%s}`, name, typ, stream, attrs)
	if _, err := p.p.Toxics.AddToxicJson(strings.NewReader(body)); err != nil {
		return fmt.Errorf("faultkit: %s: add %s: %w", p.name, name, err)
	}
	return nil
}

func (p *Proxy) remove(name string) {
	_ = p.p.Toxics.RemoveToxic(context.Background(), name)
}

// Latency delays every answer by latency ± jitter milliseconds, as a
// network far from the dependency does (Heroku's API: 100–300 ms).
func (p *Proxy) Latency(ms, jitterMS int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.remove("latency")
	return p.add("latency", "latency", "downstream", fmt.Sprintf(`{"latency":%d,"jitter":%d}`, ms, jitterMS))
}

// Blackhole swallows all traffic both ways: connections stay open and new
// ones are accepted, but nothing arrives, as when a network path or a
// frozen server drops packets. Clients see only timeouts. Heal ends it.
func (p *Proxy) Blackhole() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.add("blackhole-up", "timeout", "upstream", `{"timeout":0}`); err != nil {
		return err
	}
	return p.add("blackhole-down", "timeout", "downstream", `{"timeout":0}`)
}

// Heal ends a blackhole. Connections that lost bytes during it are closed,
// since their protocol state is lost: clients must reconnect, as after a
// real partition.
func (p *Proxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.remove("blackhole-up")
	p.remove("blackhole-down")
	p.p.Stop()
	_ = p.p.Start()
}

// Reset closes every connection through the proxy at once (as a failover,
// a restarted server or a dropped NAT mapping does) and accepts new ones
// straight away.
func (p *Proxy) Reset() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.p.Stop()
	if err := p.p.Start(); err != nil {
		return fmt.Errorf("faultkit: %s: restart after reset: %w", p.name, err)
	}
	return nil
}
