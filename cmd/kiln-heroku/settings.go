package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/asheroku"
	"github.com/kiln-dev/kiln/internal/devenv"
	"github.com/kiln-dev/kiln/internal/herokusim"
)

// defaultEnvFile is where kiln-dev writes the local stack's environment;
// reading it by default makes every command work against `make dev` with
// no flags.
const defaultEnvFile = ".dev/env"

// settings are the flags every Heroku-playing command shares. Each value
// comes from, in order: its flag, the manifest (--manifest), kiln-heroku's
// own environment, the env file, a default.
type settings struct {
	envFile      string
	manifestFile string
	kilnURL      string
	id           string
	password     string
	salt         string
	prefix       string
	simURL       string
	simListen    string
	clientSecret string

	getenv   func(string) string
	file     map[string]string
	manifest *asheroku.Manifest
	stderr   io.Writer
}

func (s *settings) register(fs *flag.FlagSet) {
	fs.StringVar(&s.envFile, "env-file", defaultEnvFile, "environment file to read Kiln's settings from (kiln-dev writes it)")
	fs.StringVar(&s.manifestFile, "manifest", "", "add-on manifest to read the id, password, SSO salt, prefix and production URL from")
	fs.StringVar(&s.kilnURL, "kiln", "", "Kiln's root URL (default: KILN_URL, else http://localhost:$PORT)")
	fs.StringVar(&s.id, "id", "", "manifest id: the Basic-auth user (default: ADDON_ID)")
	fs.StringVar(&s.password, "password", "", "manifest api.password (default: the first of ADDON_PASSWORD)")
	fs.StringVar(&s.salt, "sso-salt", "", "manifest api.sso_salt (default: ADDON_SSO_SALT)")
	fs.StringVar(&s.prefix, "prefix", "", "config var prefix (default: ADDON_CONFIG_PREFIX, else the id upper-cased)")
	fs.StringVar(&s.simURL, "sim-url", "", "a running Heroku simulator: Kiln's HEROKU_API_URL (default: KILN_SIM_URL, else HEROKU_API_URL)")
	fs.StringVar(&s.simListen, "sim-listen", "", "start a simulator in this process on this address (host:port) instead; Kiln's HEROKU_API_URL must point at it")
	fs.StringVar(&s.clientSecret, "client-secret", "", "OAuth client secret of a --sim-listen simulator (default: HEROKU_OAUTH_CLIENT_SECRET)")
}

// load reads the env file and the manifest named by the flags.
func (s *settings) load(fs *flag.FlagSet) error {
	explicit := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "env-file" {
			explicit = true
		}
	})
	vars, err := devenv.Read(s.envFile)
	switch {
	case err == nil:
		s.file = devenv.Map(vars)
	case errors.Is(err, os.ErrNotExist) && !explicit:
		s.file = map[string]string{}
	default:
		return fmt.Errorf("--env-file: %w", err)
	}
	if s.manifestFile != "" {
		data, err := os.ReadFile(s.manifestFile)
		if err != nil {
			return fmt.Errorf("--manifest: %w", err)
		}
		if problems := asheroku.Validate(data); len(problems) > 0 {
			return fmt.Errorf("--manifest %s is not valid: %w", s.manifestFile, errors.Join(problems...))
		}
		s.manifest = &asheroku.Manifest{}
		if err := json.Unmarshal(data, s.manifest); err != nil {
			return fmt.Errorf("--manifest: %w", err)
		}
	}
	return nil
}

// env returns a variable from kiln-heroku's environment, else the env file.
func (s *settings) env(key string) string {
	if v := strings.TrimSpace(s.getenv(key)); v != "" {
		return v
	}
	return s.file[key]
}

func first(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

func (s *settings) addonID() string {
	var m string
	if s.manifest != nil {
		m = s.manifest.ID
	}
	return first(s.id, m, s.env("ADDON_ID"))
}

func (s *settings) ssoSalt() string {
	var m string
	if s.manifest != nil {
		m = s.manifest.API.SSOSalt
	}
	return first(s.salt, m, s.env("ADDON_SSO_SALT"))
}

func (s *settings) configPrefix() string {
	var m string
	if s.manifest != nil {
		m = s.manifest.API.ConfigVarsPrefix
	}
	return first(s.prefix, m, s.env("ADDON_CONFIG_PREFIX"), addon.DefaultPrefix(s.addonID()))
}

// kiln returns the client for the Kiln under test, with the manifest's
// credentials.
func (s *settings) kiln() (*asheroku.Kiln, error) {
	id := s.addonID()
	var mPassword, mURL string
	if s.manifest != nil {
		mPassword = s.manifest.API.Password
		mURL = strings.TrimSuffix(s.manifest.API.Production.BaseURL, asheroku.ResourcesPath)
	}
	envPassword, _, _ := strings.Cut(s.env("ADDON_PASSWORD"), ",")
	password := first(s.password, mPassword, strings.TrimSpace(envPassword))
	if id == "" || password == "" {
		return nil, errors.New("no credentials for Kiln: pass --id and --password (or --manifest), set ADDON_ID and ADDON_PASSWORD, or run from the repository after make dev (it writes .dev/env)")
	}
	root := first(s.kilnURL, mURL, s.env("KILN_URL"))
	if root == "" {
		root = "http://localhost:" + first(s.env("PORT"), "5000")
	}
	if u, err := url.Parse(root); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("--kiln %q is not an http(s) URL", root)
	}
	return asheroku.NewKiln(root, id, password), nil
}

// sim returns a client for the simulator the Kiln under test uses, starting
// one in this process for --sim-listen. The returned stop function shuts an
// in-process simulator down.
func (s *settings) sim(ctx context.Context) (*asheroku.Sim, func(), error) {
	if s.simListen != "" {
		return s.listenSim()
	}
	raw := first(s.simURL, s.env("KILN_SIM_URL"))
	if raw == "" {
		if v := s.env("HEROKU_API_URL"); v != "" && !strings.Contains(v, "api.heroku.com") {
			raw = v
		}
	}
	if raw == "" {
		return nil, nil, errors.New("no Heroku simulator: pass --sim-url (a running simulator, such as make dev's) or --sim-listen host:port (Kiln's HEROKU_API_URL and HEROKU_ID_URL must point at it)")
	}
	sim := asheroku.NewSim(raw)
	if err := sim.Ping(ctx); err != nil {
		return nil, nil, fmt.Errorf("%w (is make dev, kiln-heroku sim or docker compose running?)", err)
	}
	return sim, func() {}, nil
}

func (s *settings) listenSim() (*asheroku.Sim, func(), error) {
	ln, err := net.Listen("tcp", s.simListen)
	if err != nil {
		return nil, nil, fmt.Errorf("--sim-listen: %w", err)
	}
	secret := first(s.clientSecret, s.env("HEROKU_OAUTH_CLIENT_SECRET"), herokusim.DefaultClientSecret)
	core := herokusim.New(herokusim.Options{ClientSecret: secret, Log: slog.New(slog.DiscardHandler)})
	srv := &http.Server{Handler: core, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	addr := ln.Addr().(*net.TCPAddr)
	host := addr.IP.String()
	if addr.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	u := "http://" + net.JoinHostPort(host, fmt.Sprint(addr.Port))
	fmt.Fprintf(s.stderr, "Heroku simulator listening on %s (Kiln's HEROKU_API_URL and HEROKU_ID_URL must reach it)\n", u)
	stop := func() {
		core.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}
	return asheroku.NewSim(u), stop, nil
}
