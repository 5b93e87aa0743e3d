package cliexec

import (
	"fmt"
	"strings"
)

// SecretEnvFlagHelp is the help of --secret-env, on every command that takes it.
const SecretEnvFlagHelp = "give this call secret NAME as $NAME, or NAME=ENV_VAR as $ENV_VAR (repeatable)"

// ParseSecretEnv turns --secret-env NAME and NAME=ENV_VAR into the SDK's
// secret name -> variable name map ("" = the secret's own name).
func ParseSecretEnv(args []string) (map[string]string, error) {
	if len(args) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, arg := range args {
		name, envName, hasEnv := strings.Cut(arg, "=")
		if name == "" || hasEnv && envName == "" {
			return nil, fmt.Errorf("--secret-env %q is malformed: expected NAME or NAME=ENV_VAR", arg)
		}
		if envName == name {
			envName = ""
		}
		if prev, dup := out[name]; dup && prev != envName {
			return nil, fmt.Errorf("--secret-env names secret %s twice: give each secret once", name)
		}
		out[name] = envName
	}
	return out, nil
}

// ParseEnv turns repeated --env NAME=VALUE into a map.
func ParseEnv(args []string) (map[string]string, error) {
	if len(args) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, arg := range args {
		name, value, ok := strings.Cut(arg, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("--env %q is malformed: expected NAME=VALUE", arg)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("--env sets %s twice: give each variable once", name)
		}
		out[name] = value
	}
	return out, nil
}
