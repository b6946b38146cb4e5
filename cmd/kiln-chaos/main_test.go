package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestFlags: a malformed invocation is refused before anything starts.
func TestFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown round", []string{"-rounds", "redis,cluster"}, `unknown round "cluster"`},
		{"unknown flag", []string{"-fast"}, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errs bytes.Buffer
			err := run(context.Background(), tt.args, &out, &errs)
			if err == nil || !strings.Contains(err.Error()+errs.String(), tt.want) {
				t.Fatalf("err = %v (stderr %q), want one saying %q", err, errs.String(), tt.want)
			}
		})
	}
}
