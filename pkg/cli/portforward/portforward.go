// Package portforward implements `kubectl mirrord port-forward`, mirrord's command of the
// same name: ports of this machine's loopback that reach hosts of the cluster's network
// through a session (its Default cluster's agent: the target's pod, or a targetless agent in
// the session's namespace), names resolved as the target resolves them.
package portforward

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/cli/sessionflags"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/target"
)

var (
	long = templates.LongDesc(`
		Forward ports of this machine's 127.0.0.1 to hosts of the cluster's network, through a
		session: connections leave from the target's pod in the Default cluster (or, without a
		target, from an agent in the session's namespace there), and host names are resolved
		with the target's DNS and search domains. The session lasts until Ctrl-C.`)

	example = templates.Examples(`
		# The cluster's PostgreSQL on this machine's port 5432, from deploy/api's pod
		kubectl mirrord port-forward -t deploy/api -n shop -L 5432:postgres:5432

		# Two services at once, without a target (an agent in the session's namespace)
		kubectl mirrord port-forward -n shop -L 8080:api.shop.svc:80 -L 6379:redis:6379`)
)

// sessionFlagNames are the session flags port-forward takes: which target, which file, the
// session's name and lifetime. Traffic flags do not apply.
var sessionFlagNames = []string{"config-file", "target", "container", "name", "session-ttl"}

// Forward is one -L: LocalPort on 127.0.0.1 reaches Host:RemotePort.
type Forward struct {
	LocalPort  uint16
	Host       string
	RemotePort uint16
}

func (f Forward) String() string {
	return fmt.Sprintf("127.0.0.1:%d -> %s", f.LocalPort, net.JoinHostPort(f.Host, strconv.Itoa(int(f.RemotePort))))
}

// ParseForward reads mirrord's -L value, [LOCAL_PORT:]HOST:REMOTE_PORT (LOCAL_PORT defaults
// to REMOTE_PORT; an IPv6 HOST in brackets).
func ParseForward(s string) (Forward, error) {
	bad := func(why string) (Forward, error) {
		return Forward{}, fmt.Errorf("-L %q: %s; write [LOCAL_PORT:]HOST:REMOTE_PORT, e.g. 5432:postgres.db:5432", s, why)
	}
	local := ""
	if first, rest, ok := strings.Cut(s, ":"); ok && isPort(first) && strings.Contains(rest, ":") {
		local, s = first, rest
	}
	host, remote, err := net.SplitHostPort(s)
	if err != nil {
		return bad("not HOST:PORT")
	}
	if host == "" || isPort(host) {
		return bad("no host")
	}
	rp, err := parsePort(remote)
	if err != nil {
		return bad("remote port: " + err.Error())
	}
	lp := rp
	if local != "" {
		if lp, err = parsePort(local); err != nil {
			return bad("local port: " + err.Error())
		}
	}
	return Forward{LocalPort: lp, Host: host, RemotePort: rp}, nil
}

// Reverse is one -R: the target's RemotePort delivered to 127.0.0.1:LocalPort of this machine.
type Reverse struct{ RemotePort, LocalPort uint16 }

func (r Reverse) String() string {
	return fmt.Sprintf("the target's port %d -> 127.0.0.1:%d", r.RemotePort, r.LocalPort)
}

// ParseReverse reads mirrord's -R value, [REMOTE_PORT:]LOCAL_PORT (REMOTE_PORT defaults to
// LOCAL_PORT).
func ParseReverse(s string) (Reverse, error) {
	remote, local, ok := strings.Cut(s, ":")
	if !ok {
		remote, local = s, s
	}
	rp, err := parsePort(remote)
	if err == nil {
		var lp uint16
		if lp, err = parsePort(local); err == nil {
			return Reverse{RemotePort: rp, LocalPort: lp}, nil
		}
	}
	return Reverse{}, fmt.Errorf("-R %q: %v; write [REMOTE_PORT:]LOCAL_PORT, e.g. 80:8080 for the target's port 80 on this machine's 8080", s, err)
}

func isPort(s string) bool {
	_, err := strconv.ParseUint(s, 10, 16)
	return err == nil
}

func parsePort(s string) (uint16, error) {
	p, err := strconv.ParseUint(s, 10, 16)
	if err != nil || p == 0 {
		return 0, fmt.Errorf("%q is not a port (1 to 65535)", s)
	}
	return uint16(p), nil
}

// Options holds the flags and streams of `kubectl mirrord port-forward`.
type Options struct {
	ConfigFlags *genericclioptions.ConfigFlags
	genericiooptions.IOStreams

	sessionflags.Flags
	Forwards         []Forward
	Reverses         []Reverse
	MirrordNamespace string
	Timeout          time.Duration
}

// NewCmdPortForward returns the port-forward command.
func NewCmdPortForward(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{ConfigFlags: flags, IOStreams: streams}
	var specs, reverseSpecs []string
	cmd := &cobra.Command{
		Use:                   "port-forward -L [LOCAL_PORT:]HOST:REMOTE_PORT | -R [REMOTE_PORT:]LOCAL_PORT [-t TARGET] [flags]",
		DisableFlagsInUseLine: true,
		Short:                 "Forward local ports to hosts of the cluster's network through a session",
		Long:                  long,
		Example:               example,
		Args:                  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(specs) == 0 && len(reverseSpecs) == 0 {
				return fmt.Errorf("no port to forward: give -L [LOCAL_PORT:]HOST:REMOTE_PORT (e.g. -L 5432:postgres:5432) or -R [REMOTE_PORT:]LOCAL_PORT (e.g. -R 80:8080)")
			}
			seen := map[uint16]string{}
			for _, s := range specs {
				f, err := ParseForward(s)
				if err != nil {
					return err
				}
				if prev, dup := seen[f.LocalPort]; dup {
					return fmt.Errorf("-L %q and -L %q both use local port %d: give each its own", prev, s, f.LocalPort)
				}
				seen[f.LocalPort] = s
				o.Forwards = append(o.Forwards, f)
			}
			remotes := map[uint16]bool{}
			for _, s := range reverseSpecs {
				r, err := ParseReverse(s)
				if err != nil {
					return err
				}
				if remotes[r.RemotePort] {
					return fmt.Errorf("-R: the target's port %d is given twice", r.RemotePort)
				}
				remotes[r.RemotePort] = true
				o.Reverses = append(o.Reverses, r)
			}
			if err := o.LoadConfig(cmd.Flags(), sessionflags.Extra{Kube: flags, Timeout: &o.Timeout}, o.ErrOut); err != nil {
				return err
			}
			if len(o.Reverses) > 0 && strings.EqualFold(o.Target, target.Targetless) {
				return fmt.Errorf("-R needs a target (--target deploy/NAME): a targetless session receives no traffic")
			}
			// Ctrl-C, a SIGTERM or the terminal's hang-up end the session (End deletes it).
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
			defer stop()
			return o.Run(ctx)
		},
	}
	all := pflag.NewFlagSet("session", pflag.ContinueOnError)
	o.AddFlags(all)
	for _, name := range sessionFlagNames {
		cmd.Flags().AddFlag(all.Lookup(name))
	}
	sessionflags.RegisterCompletions(cmd, flags)
	f := cmd.Flags()
	f.StringArrayVarP(&specs, "port-mapping", "L", nil, "[LOCAL_PORT:]HOST:REMOTE_PORT: 127.0.0.1:LOCAL_PORT reaches HOST:REMOTE_PORT from the cluster; repeatable")
	f.StringArrayVarP(&reverseSpecs, "reverse-port-mapping", "R", nil, "[REMOTE_PORT:]LOCAL_PORT: the target's REMOTE_PORT traffic (mirrored, or stolen as the config file says) reaches 127.0.0.1:LOCAL_PORT; repeatable")
	f.StringVar(&o.MirrordNamespace, "mirrord-namespace", "mirrord-system", "namespace of kubectl-mirrord's controller on the Primary")
	f.DurationVar(&o.Timeout, "timeout", 2*time.Minute, "how long to wait for the session's agents")
	return cmd
}
