// Package devenv reads and writes the environment file of Kiln's local
// development stack (.dev/env, made by `make dev`). kiln-dev generates it
// once and reuses it, so secrets and the encryption key survive restarts
// (rows encrypted yesterday still decrypt today); kiln-heroku reads it, so
// it plays Heroku with the very credentials the local Kiln expects. The
// format is the dotenv subset a shell can also source: KEY=value lines,
// # comments, optional quotes.
package devenv

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Var is one variable, kept in file order so a rewritten file reads the same.
type Var struct {
	Key   string
	Value string
}

var keyPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Parse reads KEY=value lines. Blank lines and # comments are skipped, an
// "export " prefix is allowed, and a value wrapped in matching single or
// double quotes is unwrapped. A later line for the same key wins.
func Parse(r io.Reader) ([]Var, error) {
	var vars []Var
	index := map[string]int{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		key, value, ok := strings.Cut(line, "=")
		key = strings.TrimSpace(key)
		if !ok || !keyPattern.MatchString(key) {
			return nil, fmt.Errorf("line %d: want KEY=value, got %q", n, sc.Text())
		}
		value = unquote(strings.TrimSpace(value))
		if i, seen := index[key]; seen {
			vars[i].Value = value
			continue
		}
		index[key] = len(vars)
		vars = append(vars, Var{key, value})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read environment: %w", err)
	}
	return vars, nil
}

func unquote(v string) string {
	if len(v) >= 2 && (v[0] == '\'' || v[0] == '"') && v[len(v)-1] == v[0] {
		return v[1 : len(v)-1]
	}
	return v
}

// Read parses the file at path. A missing file is an error wrapping
// os.ErrNotExist, so callers can tell "first run" from "broken file".
func Read(path string) ([]Var, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	vars, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return vars, nil
}

// Map returns the variables as a map.
func Map(vars []Var) map[string]string {
	m := make(map[string]string, len(vars))
	for _, v := range vars {
		m[v.Key] = v.Value
	}
	return m
}

// Write replaces the file at path with header (each line written as a #
// comment) and vars, readable by the owner only: it holds secrets. The file
// is written beside and renamed into place, so a crash never leaves half a
// file.
func Write(path, header string, vars []Var) error {
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimRight(header, "\n"), "\n") {
		if header == "" {
			break
		}
		b.WriteString("# " + line + "\n")
	}
	for _, v := range vars {
		if !keyPattern.MatchString(v.Key) {
			return fmt.Errorf("write %s: %q is not a variable name", path, v.Key)
		}
		q, err := quote(v.Value)
		if err != nil {
			return fmt.Errorf("write %s: %s: %w", path, v.Key, err)
		}
		b.WriteString(v.Key + "=" + q + "\n")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".env-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(b.String()); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// quote leaves shell-safe values bare and single-quotes the rest, so the
// file can also be sourced by a shell (set -a; . .dev/env).
func quote(v string) (string, error) {
	if strings.ContainsAny(v, "\n\r") {
		return "", errors.New("values cannot span lines")
	}
	if !strings.ContainsAny(v, " \t#'\"$`\\&;|<>()*[]{}~!") {
		return v, nil
	}
	if strings.Contains(v, "'") {
		return "", errors.New("values cannot contain both shell metacharacters and a single quote")
	}
	return "'" + v + "'", nil
}
