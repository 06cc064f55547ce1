package config

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/target"
)

const installationDecides = "the kubectl-mirrord installation decides this (its admin, with kustomize)"

// ignored are mirrord keys read and not applied, with the reason the warning gives.
var ignored = map[string]string{
	"operator":                    "sessions always run through the installation's controller",
	"telemetry":                   "kubectl-mirrord sends no telemetry",
	"accept_invalid_certificates": "TLS to the API server follows your kubeconfig",
	"skip_processes":              "every process the command starts runs in the session",
	"skip_build_tools":            "every process the command starts runs in the session",
	"skip_extra_build_tools":      "every process the command starts runs in the session",
	"sip_binaries":                "no binaries are patched: the command runs in namespaces",
	"use_proxy":                   "connections to the API server follow your kubeconfig",
	"internal_proxy":              "there is no internal proxy process",
	"external_proxy":              "there is no external proxy process",
	"experimental":                "experimental mirrord settings do not apply",
	"pause":                       "pausing the target is not supported",
	"connect_tcp":                 "the session is reached through the API server",
	"container":                   "mirrord's container mode does not apply",
	"kube_timeout":                "API calls use your kubeconfig's timeouts",
	"feature.hostname":            "the command always sees the target's hostname",
	"feature.network.ipv6":        "IPv6 follows the target's network",
	"feature.network.incoming.ignore_localhost":    "connections the target makes to itself are never intercepted",
	"feature.network.incoming.listen_ports":        "not needed: the command's ports are its own (it runs in its own network namespace)",
	"feature.network.incoming.on_concurrent_steal": "a second whole-port steal of one port is refused with an error",
	"feature.network.outgoing.ignore_localhost":    "the command's loopback is always its own (use --local-port for ports of your machine)",
	"feature.network.outgoing.unix_streams":        "unix sockets are always local",
	"feature.env.load_from_process":                "the environment is read from the target container's process",
	"feature.fs.readonly_file_buffer":              "files are read through the session as they are used",
	"feature.fs.read_only_buffer":                  "files are read through the session as they are used",
	"agent.image":                                  installationDecides,
	"agent.namespace":                              installationDecides,
	"agent.log_level":                              installationDecides,
	"agent.json_log":                               installationDecides,
	"agent.privileged":                             installationDecides + "; agents get only the capabilities they need",
	"agent.ephemeral":                              "agents always run as Jobs next to the target's pods",
	"agent.communication_timeout":                  installationDecides,
	"agent.network_interface":                      "agents work in the target's network namespace",
	"agent.flush_connections":                      "steals take new connections; established ones stay with the target",
	"agent.disabled_capabilities":                  installationDecides,
	"agent.tolerations":                            installationDecides + "; agents tolerate every taint",
	"agent.resources":                              installationDecides,
	"agent.labels":                                 installationDecides,
	"agent.annotations":                            installationDecides,
	"agent.node_selector":                          "agents run on their target pod's node",
	"agent.service_account":                        installationDecides,
	"agent.image_pull_secrets":                     installationDecides,
	"agent.check_out_of_pods":                      "agents are pinned to their pod's node",
	"agent.nftables":                               "agents choose nftables or iptables themselves",
	"agent.dns":                                    "DNS is resolved with the target's resolv.conf",
	"agent.metrics":                                installationDecides,
	"agent.exclude_from_mesh":                      "agents are always excluded from mesh injection",
}

// unsupported are mirrord keys whose feature kubectl-mirrord does not have.
var unsupported = map[string]string{
	"feature.copy_target":                     "copy_target is not supported: sessions run in the target's own pods (use a steal with an HTTP filter to share the target)",
	"feature.split_queues":                    "queue splitting is not supported",
	"feature.db_branches":                     "database branches are not supported",
	"feature.preview":                         "preview environments are not supported",
	"feature.network.incoming.https_delivery": "TLS delivery is not supported: stolen TLS reaches the command as it arrived",
	"feature.network.incoming.tls_delivery":   "TLS delivery is not supported: stolen TLS reaches the command as it arrived",
	"feature.network.dns.filter":              "DNS filters are not supported: use feature.network.outgoing.filter to keep hosts local (their names then resolve locally)",
	"feature.env.unset":                       "unsetting variables is not supported: use feature.env.exclude",
	"feature.env.env_file":                    "env files are not supported: use feature.env.override",
	"feature.env.mapping":                     "env mapping is not supported: use feature.env.override",
	"feature.fs.mapping":                      "fs mapping is not supported",
	"feature.fs.not_found_patterns":           "not supported: use feature.fs.not_found",
}

// take drops the ignored keys of m, recording a warning for each.
func (f *File) take(m map[string]node) map[string]node {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if iv, ok := m[k].v.(ignoredValue); ok {
			n := m[k]
			f.Warnings = append(f.Warnings, fmt.Sprintf("%s ignored: %s", n.path, iv.why))
			delete(m, k)
		}
	}
	return m
}

func (f *File) read(root node) error {
	m, err := root.object("target", "kube_context", "kubeconfig", "feature", "agent")
	if err != nil {
		return err
	}
	m = f.take(m)
	if n, ok := m["target"]; ok {
		if err := f.readTarget(n); err != nil {
			return err
		}
	}
	for key, dst := range map[string]**string{"kube_context": &f.KubeContext, "kubeconfig": &f.Kubeconfig} {
		if n, ok := m[key]; ok {
			s, err := n.str()
			if err != nil {
				return err
			}
			*dst = &s
		}
	}
	if n, ok := m["feature"]; ok {
		if err := f.readFeature(n); err != nil {
			return err
		}
	}
	if n, ok := m["agent"]; ok {
		if err := f.readAgent(n); err != nil {
			return err
		}
	}
	return nil
}

// readTarget accepts "deployment/api[/container/c]" or {path, namespace}, where path is that
// string or {deployment: api, container: c}.
func (f *File) readTarget(n node) error {
	if _, ok := n.v.(string); ok {
		return f.readTargetPath(n)
	}
	m, err := n.object("path", "namespace")
	if err != nil {
		return n.errorf("expected \"KIND/NAME[/container/C]\" or {path, namespace}, got %s", describe(n.v))
	}
	if ns, ok := m["namespace"]; ok {
		s, err := ns.str()
		if err != nil {
			return err
		}
		f.Namespace = &s
	}
	if p, ok := m["path"]; ok {
		return f.readTargetPath(p)
	}
	return nil
}

func (f *File) readTargetPath(n node) error {
	if s, ok := n.v.(string); ok {
		if s == "targetless" {
			return n.errorf("targetless sessions are not supported: name a target, e.g. deployment/api")
		}
		if _, err := target.Parse(s, "", "default"); err != nil {
			return n.errorf("%v", err)
		}
		f.Target = &s
		return nil
	}
	kinds := []string{"pod", "deployment", "statefulset", "replicaset", "daemonset", "container"}
	m, err := n.object(kinds...)
	if err != nil {
		return err
	}
	var kind, name string
	for _, k := range kinds[:5] {
		if c, ok := m[k]; ok {
			if kind != "" {
				return n.errorf("names both a %s and a %s: give one", kind, k)
			}
			if name, err = c.str(); err != nil {
				return err
			}
			kind = k
		}
	}
	if kind == "" {
		return n.errorf("say which workload: one of %s", strings.Join(kinds[:5], ", "))
	}
	s := kind + "/" + name
	if c, ok := m["container"]; ok {
		cs, err := c.str()
		if err != nil {
			return err
		}
		f.Container = &cs
	}
	if _, err := target.Parse(s, "", "default"); err != nil {
		return n.errorf("%v", err)
	}
	f.Target = &s
	return nil
}

func (f *File) readFeature(n node) error {
	m, err := n.object("env", "fs", "network")
	if err != nil {
		return err
	}
	m = f.take(m)
	if e, ok := m["env"]; ok {
		if err := f.readEnv(e); err != nil {
			return err
		}
	}
	if e, ok := m["fs"]; ok {
		if err := f.readFS(e); err != nil {
			return err
		}
	}
	if e, ok := m["network"]; ok {
		nm, err := e.object("incoming", "outgoing", "dns")
		if err != nil {
			return err
		}
		nm = f.take(nm)
		if i, ok := nm["incoming"]; ok {
			if err := f.readIncoming(i); err != nil {
				return err
			}
		}
		if o, ok := nm["outgoing"]; ok {
			if err := f.readOutgoing(o); err != nil {
				return err
			}
		}
		if d, ok := nm["dns"]; ok {
			if err := f.readDNS(d); err != nil {
				return err
			}
		}
	}
	return nil
}

func (f *File) readEnv(n node) error {
	if b, ok := n.v.(bool); ok {
		off := !b
		f.Env.Disabled = &off
		return nil
	}
	m, err := n.object("include", "exclude", "override")
	if err != nil {
		return n.errorf("expected true, false or {include, exclude, override}, got %s", describe(n.v))
	}
	m = f.take(m)
	if i, ok := m["include"]; ok {
		if f.Env.Include, err = i.strings(";"); err != nil {
			return err
		}
	}
	if e, ok := m["exclude"]; ok {
		if f.Env.Exclude, err = e.strings(";"); err != nil {
			return err
		}
	}
	if len(f.Env.Include) > 0 && len(f.Env.Exclude) > 0 {
		return n.errorf("include and exclude are exclusive: keep one of them")
	}
	if o, ok := m["override"]; ok {
		om, err := o.anyObject()
		if err != nil {
			return err
		}
		f.Env.Override = map[string]string{}
		for k, v := range om {
			s, err := v.str()
			if err != nil {
				return err
			}
			if k == "" || strings.Contains(k, "=") {
				return v.errorf("%q is not a variable name", k)
			}
			f.Env.Override[k] = s
		}
	}
	return nil
}

// anyObject is an object whose keys are data (feature.env.override), not schema.
func (n node) anyObject() (map[string]node, error) {
	m, ok := n.v.(map[string]any)
	if !ok {
		return nil, n.errorf("expected a table of NAME: value, got %s", describe(n.v))
	}
	out := make(map[string]node, len(m))
	for k, v := range m {
		c := n.child(k)
		c.v = v
		out[k] = c
	}
	return out, nil
}

var fsModes = []string{"local", "localwithoverrides", "read", "write"}

func (f *File) readFS(n node) error {
	setMode := func(n node) error {
		mode, err := n.oneOf(fsModes...)
		if err != nil {
			return err
		}
		if mode == "localwithoverrides" {
			mode = "local"
		}
		f.FS.Mode = &mode
		return nil
	}
	switch v := n.v.(type) {
	case bool:
		mode := "local"
		if v {
			mode = "read"
		}
		f.FS.Mode = &mode
		return nil
	case string:
		return setMode(n)
	}
	m, err := n.object("mode", "read_only", "read_write", "local", "not_found")
	if err != nil {
		return n.errorf("expected a mode (%s) or {mode, read_only, read_write, local, not_found}, got %s", strings.Join(fsModes, ", "), describe(n.v))
	}
	m = f.take(m)
	if mode, ok := m["mode"]; ok {
		if err := setMode(mode); err != nil {
			return err
		}
	}
	for key, dst := range map[string]*[]string{"read_only": &f.FS.ReadOnly, "read_write": &f.FS.ReadWrite, "local": &f.FS.Local, "not_found": &f.FS.NotFound} {
		if l, ok := m[key]; ok {
			if *dst, err = l.regexes(); err != nil {
				return err
			}
		}
	}
	return nil
}

var incomingModes = []string{"mirror", "steal", "off"}

func (f *File) readIncoming(n node) error {
	switch v := n.v.(type) {
	case string:
		mode, err := n.oneOf(incomingModes...)
		f.Incoming.Mode = &mode
		return err
	case bool:
		mode := "mirror"
		if !v {
			mode = "off"
		}
		f.Incoming.Mode = &mode
		return nil
	}
	m, err := n.object("mode", "http_filter", "http_header_filter", "port_mapping", "ignore_ports", "ports")
	if err != nil {
		return err
	}
	m = f.take(m)
	in := &f.Incoming
	if mode, ok := m["mode"]; ok {
		s, err := mode.oneOf(incomingModes...)
		if err != nil {
			return err
		}
		in.Mode = &s
	}
	if p, ok := m["ports"]; ok {
		if in.Ports, err = p.ports(); err != nil {
			return err
		}
	}
	if p, ok := m["ignore_ports"]; ok {
		if in.IgnorePorts, err = p.ports(); err != nil {
			return err
		}
	}
	if p, ok := m["port_mapping"]; ok {
		pairs, err := p.list()
		if err != nil {
			return err
		}
		for _, pair := range pairs {
			lr, err := pair.list()
			if err != nil || len(lr) != 2 {
				return pair.errorf("write each mapping as [LOCAL, REMOTE], e.g. [8080, 80] for the target's port 80 delivered to local port 8080")
			}
			local, err := lr[0].port()
			if err != nil {
				return err
			}
			remote, err := lr[1].port()
			if err != nil {
				return err
			}
			in.PortMapping = append(in.PortMapping, [2]int32{remote, local})
		}
	}
	if h, ok := m["http_filter"]; ok {
		if err := f.readHTTPFilter(h); err != nil {
			return err
		}
	}
	if h, ok := m["http_header_filter"]; ok {
		// mirrord's older form: {filter, ports}.
		hm, err := h.object("filter", "ports")
		if err != nil {
			return err
		}
		if fl, ok := hm["filter"]; ok {
			if err := f.setFilter(fl, &in.Header); err != nil {
				return err
			}
		}
		if p, ok := hm["ports"]; ok && in.Ports == nil {
			if in.Ports, err = p.ports(); err != nil {
				return err
			}
		}
	}
	if (in.Header != nil || in.Path != nil || in.Method != nil) && (in.Mode == nil || *in.Mode != "steal") {
		return n.errorf("an HTTP filter chooses which requests to steal: set mode = \"steal\"")
	}
	return nil
}

func (f *File) setFilter(n node, dst **string) error {
	s, err := n.str()
	if err != nil {
		return err
	}
	if err := checkRegex(n, s); err != nil {
		return err
	}
	if *dst != nil && **dst != s {
		return n.errorf("a second %s filter; a request must match every filter set, so give one regex per kind (combine them with |)", strings.TrimSuffix(n.path[strings.LastIndex(n.path, ".")+1:], "_filter"))
	}
	*dst = &s
	return nil
}

func (f *File) readHTTPFilter(n node) error {
	m, err := n.object("header_filter", "path_filter", "method_filter", "all_of", "any_of", "ports")
	if err != nil {
		return err
	}
	in := &f.Incoming
	for key, dst := range map[string]**string{"header_filter": &in.Header, "path_filter": &in.Path, "method_filter": &in.Method} {
		if fl, ok := m[key]; ok {
			if err := f.setFilter(fl, dst); err != nil {
				return err
			}
		}
	}
	// all_of: every inner filter must match, which is how the set fields combine. any_of
	// with one entry is the same; with more it is a union the agent cannot express.
	for _, key := range []string{"all_of", "any_of"} {
		l, ok := m[key]
		if !ok {
			continue
		}
		inner, err := l.list()
		if err != nil {
			return err
		}
		if len(inner) == 0 {
			return l.errorf("an empty list matches nothing: remove it or add filters")
		}
		if key == "any_of" && len(inner) > 1 {
			return l.errorf("a request matching any of several filters is not supported: combine regexes of one kind with |, e.g. path_filter = \"^/a|^/b\"")
		}
		for _, e := range inner {
			em, err := e.object("header", "path", "method")
			if err != nil {
				return err
			}
			if len(em) != 1 {
				return e.errorf("each inner filter has exactly one of header, path, method")
			}
			for k, v := range em {
				dst := map[string]**string{"header": &in.Header, "path": &in.Path, "method": &in.Method}[k]
				if err := f.setFilter(v, dst); err != nil {
					return err
				}
			}
		}
	}
	if p, ok := m["ports"]; ok && in.Ports == nil {
		if in.Ports, err = p.ports(); err != nil {
			return err
		}
	}
	return nil
}

func (f *File) readOutgoing(n node) error {
	if b, ok := n.v.(bool); ok {
		f.Outgoing.TCP, f.Outgoing.UDP = &b, &b
		return nil
	}
	m, err := n.object("tcp", "udp", "filter")
	if err != nil {
		return n.errorf("expected true, false or {tcp, udp, filter}, got %s", describe(n.v))
	}
	m = f.take(m)
	for key, dst := range map[string]**bool{"tcp": &f.Outgoing.TCP, "udp": &f.Outgoing.UDP} {
		if b, ok := m[key]; ok {
			v, err := b.boolean()
			if err != nil {
				return err
			}
			*dst = &v
		}
	}
	if fl, ok := m["filter"]; ok {
		fm, err := fl.object("local", "remote")
		if err != nil {
			return err
		}
		if len(fm) != 1 {
			return fl.errorf("give exactly one of local (these go from your machine) or remote (only these go through the target)")
		}
		for key, dst := range map[string]*[]string{"local": &f.Outgoing.Local, "remote": &f.Outgoing.Remote} {
			if l, ok := fm[key]; ok {
				if *dst, err = l.strings(""); err != nil {
					return err
				}
				for i, e := range *dst {
					(*dst)[i] = strings.TrimPrefix(strings.TrimPrefix(e, "tcp://"), "udp://")
				}
			}
		}
	}
	return nil
}

func (f *File) readDNS(n node) error {
	if b, ok := n.v.(bool); ok {
		f.DNS = &b
		return nil
	}
	m, err := n.object("enabled")
	if err != nil {
		return err
	}
	if e, ok := m["enabled"]; ok {
		b, err := e.boolean()
		if err != nil {
			return err
		}
		f.DNS = &b
	}
	return nil
}

func (f *File) readAgent(n node) error {
	m, err := n.object("ttl", "startup_timeout")
	if err != nil {
		return err
	}
	m = f.take(m)
	if t, ok := m["ttl"]; ok {
		v, err := t.integer(5, 3600)
		if err != nil {
			return err
		}
		ttl := int32(v)
		f.SessionTTL = &ttl
	}
	if t, ok := m["startup_timeout"]; ok {
		v, err := t.integer(1, 3600)
		if err != nil {
			return err
		}
		d := time.Duration(v) * time.Second
		f.StartupTimeout = &d
	}
	return nil
}
