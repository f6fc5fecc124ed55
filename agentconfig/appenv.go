package agentconfig

// AppEnvPrefix renames the app's environment inside our containers. The agent receives a copy
// of the app containers' env and envFrom so that templates can read `{{ env "X" }}`, but
// whoever edits a ConfigMap the app reads must not be able to steer the agent: VAULT_ADDR,
// VAULT_AGENT_ADDR, VAULT_SKIP_VERIFY, HTTPS_PROXY, SSL_CERT_FILE, GODEBUG or
// VAULT_INJECTOR_CONFIG from the app would otherwise redirect the agent's credentials or weaken
// its TLS. Under this prefix no library, no Go runtime setting and no agent flag reads them;
// only the template `env` function does, after stripping it.
const AppEnvPrefix = "VI_APP_"
