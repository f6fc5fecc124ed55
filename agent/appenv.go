package agent

import (
	"os"

	"github.com/vault-injector/vault-injector/agentconfig"
)

// appGetenv is the template `env` function: the app's variable X, which our containers carry
// renamed as agentconfig.AppEnvPrefix+X (see there for why). The agent's own environment is
// not visible to templates.
func appGetenv(name string) string { return os.Getenv(agentconfig.AppEnvPrefix + name) }
