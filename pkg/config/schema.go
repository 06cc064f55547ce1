package config

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/local/fsmap"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/target"
)

// The ranges sessions here take: TTL (heartbeats come every third of it) and start-up wait.
const (
	minTTL, maxTTL = 5, 3600
	maxStartup     = 86400
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
	"agent.disable_mesh_sidecar_injection":         "agents are always excluded from mesh injection",
	"agent.clean_iptables_on_start":                "agents remove their own redirections and refuse to start over another agent's",
	"agent.external_ip_fix":                        "passed-on requests reach the target on the address it listens on",
	"agent.http_detection_timeout":                 installationDecides,
	"agent.image_pull_policy":                      installationDecides,
	"agent.inject_headers":                         "responses are passed on as the target or the command wrote them",
	"agent.jaq_time_limit":                         installationDecides,
	"agent.max_body_buffer_size":                   installationDecides,
	"agent.max_body_buffer_timeout":                installationDecides,
	"agent.override_cache_control":                 "responses are passed on as the target or the command wrote them",
	"agent.priority_class":                         installationDecides,
	"agent.security_context":                       installationDecides + "; agents get only the capabilities they need",
	"api":                                          "there is no local session monitor API; `kubectl mirrord sessions` lists sessions",
	"baggage":                                      "kubectl-mirrord sends no traces",
	"traceparent":                                  "kubectl-mirrord sends no traces",
	"ci":                                           "sessions end with their command or their heartbeats, in CI as anywhere",
	"key":                                          "sessions are named by kubectl-mirrord (use --name)",
	"multi_cluster":                                "sessions span the Primary's member clusters as its admin registered them",
	"skip_sip":                                     "no binaries are patched: the command runs in namespaces",
	"startup_retry":                                "exec waits for the session's agents up to agent.startup_timeout",
	"feature.magic":                                "mirrord's automatic fixes for specific tools do not apply: the command runs unmodified in namespaces",
}

// unsupported are mirrord keys whose feature kubectl-mirrord does not have.
var unsupported = map[string]string{
	"profile":             "mirrord profiles are not supported yet: set the features in this file",
	"feature.copy_target": "copy_target is not supported: sessions run in the target's own pods (use a steal with an HTTP filter to share the target)",
	"feature.preview":     "preview environments are not supported",
	"feature.network.incoming.https_delivery": "TLS delivery is not supported: stolen TLS reaches the command as it arrived",
	"feature.network.incoming.tls_delivery":   "TLS delivery is not supported: stolen TLS reaches the command as it arrived",
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
	m, err := root.object("target", "kube_context", "kubeconfig", "feature", "agent", "profile")
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
	if n, ok := m["profile"]; ok {
		// A MirrordClusterProfile's NAME or a MirrordProfile's NAMESPACE/NAME on the Primary,
		// applied when the session starts.
		if f.Features.Profile, err = n.str(); err != nil {
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
	if t, table := n.v.(map[string]any); table {
		// mirrord also takes the path's table in place of {path: ...}: {deployment: api}.
		if _, hasPath := t["path"]; !hasPath {
			if ns, hasNS := t["namespace"]; !hasNS || len(t) > 1 {
				rest := maps.Clone(t)
				delete(rest, "namespace")
				if hasNS {
					s, err := node{path: n.child("namespace").path, v: ns}.str()
					if err != nil {
						return err
					}
					f.Namespace = &s
				}
				return f.readTargetPath(node{path: n.path, v: rest})
			}
		}
	}
	m, err := n.object("path", "namespace")
	if err != nil {
		if _, table := n.v.(map[string]any); table {
			return err
		}
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
		if _, err := target.Parse(s, "", "default"); err != nil {
			return n.errorf("%v", err)
		}
		f.Target = &s
		return nil
	}
	// mirrord's keys (stateful_set, replica_set, cron_job, ...), and the spellings this
	// loader took before.
	kinds := []string{"pod", "deployment", "stateful_set", "replica_set", "job", "cron_job", "service", "rollout",
		"daemonset", "daemon_set", "statefulset", "replicaset", "labels", "container"}
	m, err := n.object(kinds...)
	if err != nil {
		return err
	}
	if l, ok := m["labels"]; ok {
		return f.readLabelsTarget(n, m, l)
	}
	var kind, name string
	for _, k := range kinds[:12] {
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
		return n.errorf("say which workload: one of %s, or labels", strings.Join(kinds[:8], ", "))
	}
	s := strings.ReplaceAll(kind, "_", "") + "/" + name
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

// readLabelsTarget reads mirrord's {labels: {KEY: VALUE, ...}[, container]}: every pod with
// all of the labels.
func (f *File) readLabelsTarget(n node, m map[string]node, l node) error {
	if len(m) > 2 || (len(m) == 2 && m["container"].v == nil) {
		return n.errorf("labels select pods by themselves: give only labels and container")
	}
	lm, ok := l.v.(map[string]any)
	if !ok || len(lm) == 0 {
		return l.errorf("expected a table of labels (KEY: VALUE), got %s", describe(l.v))
	}
	set := labels.Set{}
	for k, v := range lm {
		c := node{path: l.child(k).path, v: v}
		s, err := c.str()
		if err != nil {
			return err
		}
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return c.errorf("not a label key: %s", strings.Join(errs, "; "))
		}
		if errs := validation.IsValidLabelValue(s); len(errs) > 0 {
			return c.errorf("%q is not a label value: %s", s, strings.Join(errs, "; "))
		}
		set[k] = s
	}
	if c, ok := m["container"]; ok {
		cs, err := c.str()
		if err != nil {
			return err
		}
		f.Container = &cs
	}
	s := "labels/" + set.String()
	f.Target = &s
	return nil
}

func (f *File) readFeature(n node) error {
	m, err := n.object("env", "fs", "network", "db_branches", "split_queues")
	if err != nil {
		return err
	}
	m = f.take(m)
	if b, ok := m["db_branches"]; ok {
		if err := f.readDBBranches(b); err != nil {
			return err
		}
		if len(f.DBBranches) > 0 && !dbBranchesMade {
			return b.errorf("database branches are not supported yet: this version reads and checks them (this config is valid) but does not make them; remove feature.db_branches to run without them")
		}
	}
	if q, ok := m["split_queues"]; ok {
		if err := f.readSplitQueues(q); err != nil {
			return err
		}
		for _, sq := range f.SplitQueues {
			if sq.QueueID == "*" {
				return q.child("*").errorf("a filter for every queue of the registry is not supported yet: name each queue id")
			}
			f.Features.SplitQueues = append(f.Features.SplitQueues, mirrordv1alpha1.QueueSplitRequest{QueueID: sq.QueueID, MessageFilter: sq.MessageFilter})
		}
	}
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
		if b, isBool := e.v.(bool); isBool {
			// mirrord's switch for the whole network feature: false is no incoming, no
			// outgoing and no remote DNS.
			if b {
				return nil
			}
			if err := f.readIncoming(node{path: e.child("incoming").path, v: "off"}); err != nil {
				return err
			}
			if err := f.readOutgoing(node{path: e.child("outgoing").path, v: false}); err != nil {
				return err
			}
			return f.readDNS(node{path: e.child("dns").path, v: false})
		}
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
	env := &f.Features.Env
	if b, ok := n.v.(bool); ok {
		env.Disabled = !b
		return nil
	}
	m, err := n.object("include", "exclude", "override", "mapping", "unset", "env_file")
	if err != nil {
		if _, table := n.v.(map[string]any); table {
			return err // a key of the table: its own error says what is wrong
		}
		return n.errorf("expected true, false or {include, exclude, override, mapping, unset, env_file}, got %s", describe(n.v))
	}
	m = f.take(m)
	if i, ok := m["include"]; ok {
		if env.Include, err = i.strings(";"); err != nil {
			return err
		}
	}
	if e, ok := m["exclude"]; ok {
		if env.Exclude, err = e.strings(";"); err != nil {
			return err
		}
	}
	if len(env.Include) > 0 && len(env.Exclude) > 0 {
		return n.errorf("include and exclude are exclusive: keep one of them")
	}
	if u, ok := m["unset"]; ok {
		if env.Unset, err = u.strings(""); err != nil {
			return err
		}
	}
	if e, ok := m["env_file"]; ok {
		p, err := e.str()
		if err != nil {
			return err
		}
		f.EnvFile = &p
	}
	if mp, ok := m["mapping"]; ok {
		if env.Mapping, err = mp.stringTable(); err != nil {
			return err
		}
	}
	if o, ok := m["override"]; ok {
		if env.Override, err = o.stringTable(); err != nil {
			return err
		}
		for k := range env.Override {
			if k == "" || strings.Contains(k, "=") {
				return o.child(k).errorf("%q is not a variable name", k)
			}
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

// stringTable is an object of data keys (anyObject) whose values are all strings.
func (n node) stringTable() (map[string]string, error) {
	m, err := n.anyObject()
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		if out[k], err = v.str(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

var fsModes = []string{"local", "localwithoverrides", "read", "write"}

func (f *File) readFS(n node) error {
	fs := &f.Features.FS
	setMode := func(n node) error {
		mode, err := n.oneOf(fsModes...)
		if err != nil {
			return err
		}
		if mode == "localwithoverrides" {
			mode = "local"
		}
		fs.Mode = mirrordv1alpha1.FSMode(mode)
		return nil
	}
	switch v := n.v.(type) {
	case bool:
		fs.Mode = mirrordv1alpha1.FSModeLocal
		if v {
			fs.Mode = mirrordv1alpha1.FSModeRead
		}
		return nil
	case string:
		return setMode(n)
	}
	m, err := n.object("mode", "read_only", "read_write", "local", "not_found", "mapping")
	if err != nil {
		if _, table := n.v.(map[string]any); table {
			return err // a key of the table: its own error says what is wrong
		}
		return n.errorf("expected a mode (%s) or {mode, read_only, read_write, local, not_found, mapping}, got %s", strings.Join(fsModes, ", "), describe(n.v))
	}
	m = f.take(m)
	if mode, ok := m["mode"]; ok {
		if err := setMode(mode); err != nil {
			return err
		}
	}
	if mp, ok := m["mapping"]; ok {
		if err := f.readFSMapping(mp); err != nil {
			return err
		}
	}
	for key, dst := range map[string]*[]string{"read_only": &fs.ReadOnly, "read_write": &fs.ReadWrite, "local": &fs.Local, "not_found": &fs.NotFound} {
		if l, ok := m[key]; ok {
			if *dst, err = l.strings(""); err != nil {
				return err
			}
		}
	}
	return nil
}

// readFSMapping reads feature.fs.mapping: {PATTERN: REPLACEMENT}, each checked as the
// sandbox will use it (fsmap).
func (f *File) readFSMapping(n node) error {
	mapping, err := n.stringTable()
	if err != nil {
		return err
	}
	if len(mapping) > fsmap.MaxRules {
		return n.errorf("%d mappings, at most %d", len(mapping), fsmap.MaxRules)
	}
	for k, s := range mapping {
		if _, err := fsmap.New(map[string]string{k: s}); err != nil {
			return node{path: n.path + "[" + k + "]"}.errorf("%v", err) // named as feature.env.mapping's keys are
		}
	}
	f.FSMapping = mapping
	return nil
}

var incomingModes = []string{"mirror", "steal", "off"}

func (f *File) readIncoming(n node) error {
	in := &f.Features.Network.Incoming
	switch v := n.v.(type) {
	case string:
		mode, err := n.oneOf(incomingModes...)
		in.Mode = mirrordv1alpha1.IncomingMode(mode)
		return err
	case bool:
		in.Mode = mirrordv1alpha1.IncomingModeMirror
		if !v {
			in.Mode = mirrordv1alpha1.IncomingModeOff
		}
		return nil
	}
	m, err := n.object("mode", "http_filter", "http_header_filter", "port_mapping", "ignore_ports", "ports")
	if err != nil {
		return err
	}
	m = f.take(m)
	if mode, ok := m["mode"]; ok {
		s, err := mode.oneOf(incomingModes...)
		if err != nil {
			return err
		}
		in.Mode = mirrordv1alpha1.IncomingMode(s)
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
			in.PortMapping = append(in.PortMapping, mirrordv1alpha1.PortMapping{Remote: remote, Local: local})
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
			if err := setFilter(fl, &httpFilter(in).Header); err != nil {
				return err
			}
		}
		if p, ok := hm["ports"]; ok && in.Ports == nil {
			if in.Ports, err = p.ports(); err != nil {
				return err
			}
		}
	}
	if !in.HTTPFilter.Filters() {
		in.HTTPFilter = nil // http_filter = {ports = [...]} filters nothing
	}
	// A filter beside a mode other than steal is kept: a --steal flag may still use it
	// (sessionflags ignores it otherwise, as mirrord does).
	return nil
}

// httpFilter is in's HTTP filter, made when there is none yet.
func httpFilter(in *mirrordv1alpha1.IncomingFeature) *mirrordv1alpha1.HTTPFilter {
	if in.HTTPFilter == nil {
		in.HTTPFilter = &mirrordv1alpha1.HTTPFilter{}
	}
	return in.HTTPFilter
}

func setFilter(n node, dst *string) error {
	s, err := n.str()
	if err != nil {
		return err
	}
	if *dst != "" && *dst != s {
		return n.errorf("a second %s filter; a request must match every filter set, so give one regex per kind (combine them with |)", strings.TrimSuffix(n.path[strings.LastIndex(n.path, ".")+1:], "_filter"))
	}
	*dst = s
	return nil
}

func (f *File) readHTTPFilter(n node) error {
	m, err := n.object("header_filter", "header_filter_jq", "path_filter", "method_filter", "body_filter", "all_of", "any_of", "ports")
	if err != nil {
		return err
	}
	in := &f.Features.Network.Incoming
	hf := httpFilter(in)
	for key, dst := range map[string]*string{"header_filter": &hf.Header, "header_filter_jq": &hf.HeaderJQ, "path_filter": &hf.Path, "method_filter": &hf.Method} {
		if fl, ok := m[key]; ok {
			if err := setFilter(fl, dst); err != nil {
				return err
			}
		}
	}
	if b, ok := m["body_filter"]; ok {
		if hf.Body, err = readBodyFilter(b); err != nil {
			return err
		}
	}
	for key, dst := range map[string]*[]mirrordv1alpha1.HTTPFilterTerm{"all_of": &hf.AllOf, "any_of": &hf.AnyOf} {
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
		for _, e := range inner {
			t, err := readFilterTerm(e)
			if err != nil {
				return err
			}
			*dst = append(*dst, t)
		}
	}
	if p, ok := m["ports"]; ok && in.Ports == nil {
		if in.Ports, err = p.ports(); err != nil {
			return err
		}
	}
	return nil
}

// readFilterTerm reads one filter of all_of or any_of: {"header": ...}, {"path": ...},
// {"method": ...}, a jq header filter {"query": ...}, or a body filter {"body": "json",
// "query": ..., "matches": ...}.
func readFilterTerm(n node) (mirrordv1alpha1.HTTPFilterTerm, error) {
	var t mirrordv1alpha1.HTTPFilterTerm
	if m, isMap := n.v.(map[string]any); isMap {
		if _, body := m["body"]; body {
			b, err := readBodyFilter(n)
			t.Body = b
			return t, err
		}
	}
	m, err := n.object("header", "path", "method", "query")
	if err != nil {
		return t, err
	}
	if len(m) != 1 {
		return t, n.errorf("each filter has exactly one of header, path, method, query (jq), or is a body filter {body, query, matches}")
	}
	for k, v := range m {
		dst := map[string]*string{"header": &t.Header, "path": &t.Path, "method": &t.Method, "query": &t.HeaderJQ}[k]
		if *dst, err = v.str(); err != nil {
			return t, err
		}
	}
	return t, nil
}

// readBodyFilter reads mirrord's {"body": "json", "query": JSONPATH, "matches": REGEX}.
func readBodyFilter(n node) (*mirrordv1alpha1.JSONBodyFilter, error) {
	m, err := n.object("body", "query", "matches")
	if err != nil {
		return nil, err
	}
	for _, k := range []string{"body", "query", "matches"} {
		if _, ok := m[k]; !ok {
			return nil, n.errorf("a body filter needs body, query and matches: {\"body\": \"json\", \"query\": \"$.user.id\", \"matches\": \"^42$\"}")
		}
	}
	if _, err := m["body"].oneOf("json"); err != nil {
		return nil, err
	}
	var b mirrordv1alpha1.JSONBodyFilter
	if b.Query, err = m["query"].str(); err != nil {
		return nil, err
	}
	if b.Matches, err = m["matches"].str(); err != nil {
		return nil, err
	}
	return &b, nil
}

func (f *File) readOutgoing(n node) error {
	out := &f.Features.Network.Outgoing
	if b, ok := n.v.(bool); ok {
		out.TCP, out.UDP = &b, &b
		return nil
	}
	m, err := n.object("tcp", "udp", "filter")
	if err != nil {
		if _, table := n.v.(map[string]any); table {
			return err // a key of the table: its own error says what is wrong
		}
		return n.errorf("expected true, false or {tcp, udp, filter}, got %s", describe(n.v))
	}
	m = f.take(m)
	for key, dst := range map[string]**bool{"tcp": &out.TCP, "udp": &out.UDP} {
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
		out.Filter = &mirrordv1alpha1.OutgoingFilter{}
		for key, dst := range map[string]*[]string{"local": &out.Filter.Local, "remote": &out.Filter.Remote} {
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
	dns := &f.Features.Network.DNS
	if b, ok := n.v.(bool); ok {
		dns.Disabled = !b
		return nil
	}
	m, err := n.object("enabled", "filter")
	if err != nil {
		return err
	}
	if fl, ok := m["filter"]; ok {
		fm, err := fl.object("local", "remote")
		if err != nil {
			return err
		}
		if len(fm) != 1 {
			return fl.errorf("give exactly one of local (these names resolve on your machine) or remote (only these resolve through the target)")
		}
		dns.Filter = &mirrordv1alpha1.OutgoingFilter{}
		for key, dst := range map[string]*[]string{"local": &dns.Filter.Local, "remote": &dns.Filter.Remote} {
			if l, ok := fm[key]; ok {
				if *dst, err = l.strings(""); err != nil {
					return err
				}
			}
		}
	}
	if e, ok := m["enabled"]; ok {
		b, err := e.boolean()
		if err != nil {
			return err
		}
		dns.Disabled = !b
	}
	return nil
}

func (f *File) readAgent(n node) error {
	m, err := n.object("ttl", "startup_timeout")
	if err != nil {
		return err
	}
	m = f.take(m)
	// mirrord's ranges (ttl: u16, startup_timeout: u64) are accepted; values outside what
	// sessions here can do are brought in range, with a warning.
	if t, ok := m["ttl"]; ok {
		v, err := t.integer(0, math.MaxUint16)
		if err != nil {
			return err
		}
		ttl := int32(min(max(v, minTTL), maxTTL))
		if int64(ttl) != v {
			f.Warnings = append(f.Warnings, fmt.Sprintf("agent.ttl %d: a session lives %d to %d seconds after its last heartbeat here; using %d", v, minTTL, maxTTL, ttl))
		}
		f.SessionTTL = &ttl
	}
	if t, ok := m["startup_timeout"]; ok {
		v, err := t.integer(0, math.MaxInt64)
		if err != nil {
			return err
		}
		secs := min(max(v, 1), maxStartup)
		if secs != v {
			f.Warnings = append(f.Warnings, fmt.Sprintf("agent.startup_timeout %d: using %d seconds (1 to %d)", v, secs, maxStartup))
		}
		d := time.Duration(secs) * time.Second
		f.StartupTimeout = &d
	}
	return nil
}
