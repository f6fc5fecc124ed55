//go:build webhookonly

package main

const usage = `vault-injector-webhook %s: the vault-injector admission webhook alone (the CLI is vault-injector).

Usage:
  vault-injector-webhook webhook [flags]   serve the mutating admission webhook (HTTPS)
  vault-injector-webhook version

Run "vault-injector-webhook webhook --help" for its flags.
`

var commands = map[string]command{}
