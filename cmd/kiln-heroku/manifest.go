package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/kiln-dev/kiln/internal/asheroku"
)

// driverVars are the config vars (without the prefix) each resource driver
// sets. The domain's Driver interface cannot list them, so this table must
// follow the drivers: the built-in ones set only <PREFIX>_URL; the http
// driver sets whatever the partner's service answers, at least URL, so its
// list is given with --config-vars. Its keys and driverChoice are spelled
// here rather than taken from config.Drivers so that kiln-heroku does not
// link the drivers; a test holds them to config.Drivers.
var driverVars = map[string][]string{
	"account":  {"URL"},
	"postgres": {"URL"},
	"http":     {"URL"},
}

// driverChoice names driverVars' keys for messages, as config.DriverChoice
// does; the first is the default.
const driverChoice = "account, postgres or http"

// defaultDriver is the driver Kiln runs when RESOURCE_DRIVER is unset.
const defaultDriver = "account"

func (c *cli) manifest(args []string) error {
	if len(args) == 0 {
		return usageError{"want generate or validate"}
	}
	switch args[0] {
	case "generate":
		return c.manifestGenerate(args[1:])
	case "validate":
		return c.manifestValidate(args[1:])
	}
	return usageError{fmt.Sprintf("unknown manifest command %q (want generate or validate)", args[0])}
}

// manifestGenerate writes a manifest for this Kiln: id, prefix and config
// vars from Kiln's environment, fresh secrets, and the production URL.
func (c *cli) manifestGenerate(args []string) error {
	fs, s := c.flags("manifest generate", "--url https://kiln.example.com [-o addon-manifest.json]")
	root := fs.String("url", "", "Kiln's production root URL (https), such as https://kiln.example.com")
	name := fs.String("name", "", "the add-on's display name (default: the id)")
	driver := fs.String("driver", "", "resource driver whose config vars to list (default: RESOURCE_DRIVER, else account)")
	extra := fs.String("config-vars", "", "config var names without the prefix, comma-separated, replacing the driver's (the http driver: what your service answers, e.g. URL,API_KEY)")
	reuse := fs.Bool("reuse-secrets", false, "use ADDON_PASSWORD (its first entry) and ADDON_SSO_SALT instead of fresh secrets")
	out := fs.String("o", "", "write to this file (refusing to overwrite) instead of standard output")
	pos, err := parse(fs, s, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError{"generate takes no arguments (did you mean --url?)"}
	}
	if *root == "" {
		return usageError{"--url is required: Kiln's production root URL, such as https://kiln.example.com"}
	}
	d := first(*driver, s.env("RESOURCE_DRIVER"), defaultDriver)
	vars, ok := driverVars[d]
	if !ok {
		return fmt.Errorf("unknown resource driver %q (want %s)", d, driverChoice)
	}
	if *extra != "" {
		vars = nil
		for _, v := range strings.Split(*extra, ",") {
			if v = strings.TrimSpace(v); v != "" {
				vars = append(vars, v)
			}
		}
	}
	o := asheroku.GenerateOptions{
		ID:         s.addonID(),
		Name:       *name,
		Prefix:     first(s.prefix, s.env("ADDON_CONFIG_PREFIX")),
		ConfigVars: vars,
		URL:        *root,
		Password:   s.password,
		SSOSalt:    s.salt,
	}
	if o.Name == "" && o.ID == "kiln" {
		o.Name = "Kiln"
	}
	if *reuse {
		pw, _, _ := strings.Cut(s.env("ADDON_PASSWORD"), ",")
		o.Password, o.SSOSalt = first(o.Password, strings.TrimSpace(pw)), first(o.SSOSalt, s.env("ADDON_SSO_SALT"))
		if o.Password == "" || o.SSOSalt == "" {
			return errors.New("--reuse-secrets: ADDON_PASSWORD and ADDON_SSO_SALT must be set")
		}
	}
	freshPassword, freshSalt := o.Password == "", o.SSOSalt == ""
	m, err := asheroku.Generate(o)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("encode manifest: %w", err)
	}
	b = append(b, '\n')
	if *out == "" {
		_, err = c.stdout.Write(b)
	} else {
		var f *os.File
		f, err = os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			_, err = f.Write(b)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err == nil {
			fmt.Fprintf(c.stderr, "wrote %s (it holds secrets: keep it out of git)\n", *out)
		}
	}
	if err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	// Fresh secrets mean nothing until Kiln accepts them: say how, without
	// printing them (they are in the manifest).
	file := first(*out, "addon-manifest.json")
	var sets []string
	if freshPassword {
		sets = append(sets, fmt.Sprintf("ADDON_PASSWORD=\"$(heroku config:get -a YOUR_KILN_APP ADDON_PASSWORD),$(jq -r .api.password %s)\"", file))
	}
	if freshSalt {
		sets = append(sets, fmt.Sprintf("ADDON_SSO_SALT=\"$(jq -r .api.sso_salt %s)\"", file))
	}
	if len(sets) > 0 {
		fmt.Fprintf(c.stderr, "Kiln must accept the new secrets before you push the manifest (see docs/deploy.md):\n"+
			"  heroku config:set -a YOUR_KILN_APP %s\n"+
			"  heroku addons:admin:manifest:push   # from the directory holding %s\n", strings.Join(sets, " "), file)
	}
	return nil
}

// manifestValidate checks a manifest file and lists every problem.
func (c *cli) manifestValidate(args []string) error {
	fs := flag.NewFlagSet("kiln-heroku manifest validate", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() { fmt.Fprintln(c.stderr, "usage: kiln-heroku manifest validate FILE") }
	pos, err := parseWant(fs, nil, args, "FILE")
	if err != nil {
		return err
	}
	data, err := os.ReadFile(pos[0])
	if err != nil {
		return err
	}
	problems := asheroku.Validate(data)
	if len(problems) == 0 {
		fmt.Fprintf(c.stdout, "%s: valid\n", pos[0])
		return nil
	}
	fmt.Fprintf(c.stderr, "%s: %d problem(s):\n", pos[0], len(problems))
	for _, p := range problems {
		fmt.Fprintf(c.stderr, "  - %v\n", p)
	}
	return exitError{1}
}
