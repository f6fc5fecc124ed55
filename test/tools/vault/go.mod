// Wrapper module that builds the vault server for tests (`vault server -dev`).
// Vault's own go.mod replaces api/sdk with in-tree copies that a module zip cannot use, so we
// pin the published sdk that matches v1.19.5 and copy its two non-local replace directives.
module vault-injector.io/test/tools/vault

go 1.26.0

require (
	github.com/hashicorp/vault v1.19.5
	github.com/hashicorp/vault/api v1.16.0
	github.com/hashicorp/vault/sdk v0.17.0
)

replace github.com/99designs/keyring => github.com/Jeffail/keyring v1.2.3

replace github.com/ma314smith/signedxml v1.1.1 => github.com/moov-io/signedxml v1.1.1
