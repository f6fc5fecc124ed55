//go:build minimal

// This file replaces helper/builtinplugins/registry_min.go in the copy of the Vault module that
// test/tools/build.sh builds the test server from (build_vault). Vault's minimal build leaves
// out the cloud SDKs of its full plugin set, which were most of a 16-minute cold build; it also
// leaves out the two plugins the tests use, which a released Vault has built in. Served as
// external plugins they cost a gRPC hop and a plugin process on every login and every
// credential, which no production Vault pays, and which skewed the agent's start-up bench.
// Registering them here, under the names the full build uses, makes the test server answer as
// a released one does.
package builtinplugins

import (
	credKube "github.com/hashicorp/vault-plugin-auth-kubernetes"
	dbPostgres "github.com/hashicorp/vault/plugins/database/postgresql"
)

func extendAddonPlugins(r *registry) {
	r.credentialBackends["kubernetes"] = credentialBackend{Factory: credKube.Factory}
	r.databasePlugins["postgresql-database-plugin"] = databasePlugin{Factory: dbPostgres.New}
}
