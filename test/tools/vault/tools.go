//go:build tools

// Package tools keeps in this wrapper module's requirements the vault server and the two
// plugins the tests need that a minimal server lacks; build_vault (test/tools/build.sh) builds
// them into the server (overlay/registry_min.go).
package tools

import (
	_ "github.com/hashicorp/vault"
	_ "github.com/hashicorp/vault-plugin-auth-kubernetes/cmd/vault-plugin-auth-kubernetes"
	_ "github.com/hashicorp/vault/plugins/database/postgresql/postgresql-database-plugin"
)
