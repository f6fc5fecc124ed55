// Package cliflags gives every subcommand of vault-injector the same flag conventions: each
// flag can be set by an environment variable VAULT_INJECTOR_<FLAG> (the command line wins), a
// bad value in either names its source, and --help lists both.
package cliflags

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

// EnvName is the environment variable that overrides a flag: --vault-address →
// VAULT_INJECTOR_VAULT_ADDRESS.
func EnvName(flagName string) string {
	return "VAULT_INJECTOR_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// New returns a flag set whose usage lists each flag's env override.
func New(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "Usage: vault-injector %s\n\nFlags (each can also be set by the environment variable shown):\n", synopsis)
		fs.VisitAll(func(f *flag.Flag) {
			def := ""
			if f.DefValue != "" {
				def = fmt.Sprintf(" (default %q)", f.DefValue)
			}
			fmt.Fprintf(out, "  --%s%s  [$%s]\n      %s\n", f.Name, def, EnvName(f.Name), f.Usage)
		})
	}
	return fs
}

// Parse parses args, then fills every flag not given on the command line from its environment
// variable.
func Parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		if v, ok := os.LookupEnv(EnvName(f.Name)); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("environment variable %s=%q: %w", EnvName(f.Name), v, e)
			}
		}
	})
	return err
}
