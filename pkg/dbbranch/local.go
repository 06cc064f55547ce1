package dbbranch

import (
	"fmt"
	"strconv"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

// Ready is a branch a session's command uses: its spec and where it answers.
type Ready struct {
	Name     string
	Spec     mirrordv1alpha1.MirrordDBBranchSpec
	Endpoint mirrordv1alpha1.DBEndpoint
}

// Rewrite points the local command's environment at the branches: a URL variable keeps its
// user, password, database and parameters with the branch's host and port; a host or port
// variable becomes the branch's. Only the named variables change. notes say what could not
// be rewritten (a URL held in a Secret the CLI cannot read).
func Rewrite(env map[string]string, branches []Ready) (notes []string) {
	for _, b := range branches {
		host, port := b.Endpoint.Host, b.Endpoint.Port
		c := b.Spec.Connection
		if src := c.URL; src != nil {
			name, raw := src.Variable, env[src.Variable]
			if src.Value != "" {
				raw = src.Value
			}
			if src.Secret != nil {
				name = src.Secret.EnvVarName
				if name != "" {
					notes = append(notes, fmt.Sprintf("branch %s: %s is not set: the source's URL is in Secret %s, which this machine does not read; point your command at %s:%d", b.Name, name, src.Secret.Name, host, port))
				}
				continue
			}
			if raw == "" {
				notes = append(notes, fmt.Sprintf("branch %s: the command has no %s to point at %s:%d", b.Name, name, host, port))
				continue
			}
			u, err := RewriteURL(raw, host, port)
			if err != nil {
				notes = append(notes, fmt.Sprintf("branch %s: %s: %v", b.Name, name, err))
				continue
			}
			env[name] = u
		}
		if p := c.Params; p != nil {
			set := func(src *mirrordv1alpha1.DBValueSource, value string) {
				switch {
				case src == nil:
				case src.Secret != nil:
					if src.Secret.EnvVarName != "" {
						env[src.Secret.EnvVarName] = value
					}
				default:
					env[src.Variable] = value
				}
			}
			set(&p.Host, host)
			set(p.Port, strconv.Itoa(int(port)))
		}
	}
	return notes
}
