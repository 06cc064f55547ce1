// Package outgoing decides, for each connection and DNS query of the sandboxed command,
// whether it leaves from the target (through the session) or from the developer's machine,
// and carries it there.
package outgoing

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

// Filter is feature.network.outgoing.filter: a list of destinations that go one way, all
// others going the other.
type Filter struct {
	// listRemote: the entries go remotely, everything else locally (filter.remote); else
	// the entries go locally (filter.local).
	listRemote bool
	entries    []entry
}

type entry struct {
	host   string       // a name, lower case, no trailing dot
	prefix netip.Prefix // or an address range
	port   uint16       // 0: any port
}

// ParseFilter reads filter.local (remote=false) or filter.remote (remote=true) entries:
// "host", "host:port", "CIDR", "CIDR:port", "IP", "IP:port" or ":port".
// FilterOf parses the API's filter (an outgoing or a DNS one): its remote list if it has one,
// else its local list; nil is no filter.
func FilterOf(f *mirrordv1alpha1.OutgoingFilter) (*Filter, error) {
	if f == nil {
		return nil, nil
	}
	if len(f.Remote) > 0 {
		return ParseFilter(f.Remote, true)
	}
	return ParseFilter(f.Local, false)
}

func ParseFilter(entries []string, remote bool) (*Filter, error) {
	f := &Filter{listRemote: remote}
	for _, s := range entries {
		e, err := parseEntry(s)
		if err != nil {
			return nil, err
		}
		f.entries = append(f.entries, e)
	}
	return f, nil
}

func parseEntry(s string) (entry, error) {
	var e entry
	host, port := s, ""
	if i := strings.LastIndex(s, ":"); i >= 0 && !strings.Contains(s[:i], ":") || strings.HasPrefix(s, "[") {
		// host:port, [v6]:port, :port (a bare IPv6 address has more than one colon)
		if strings.HasPrefix(s, "[") {
			j := strings.Index(s, "]")
			if j < 0 {
				return e, fmt.Errorf("outgoing filter %q: unclosed [", s)
			}
			host, port = s[1:j], strings.TrimPrefix(s[j+1:], ":")
		} else if i >= 0 {
			host, port = s[:i], s[i+1:]
		}
	}
	if port != "" {
		p, err := strconv.ParseUint(port, 10, 16)
		if err != nil || p == 0 {
			return e, fmt.Errorf("outgoing filter %q: port %q must be 1-65535", s, port)
		}
		e.port = uint16(p)
	}
	switch {
	case host == "":
		if e.port == 0 {
			return e, fmt.Errorf("outgoing filter %q: empty entry", s)
		}
	case strings.Contains(host, "/"):
		p, err := netip.ParsePrefix(host)
		if err != nil {
			return e, fmt.Errorf("outgoing filter %q: %v", s, err)
		}
		e.prefix = p.Masked()
	default:
		if ip, err := netip.ParseAddr(host); err == nil {
			e.prefix = netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen())
		} else {
			e.host = strings.TrimSuffix(strings.ToLower(host), ".")
		}
	}
	return e, nil
}

func (e entry) match(ip netip.Addr, port uint16, names []string) bool {
	if e.port != 0 && e.port != port {
		return false
	}
	switch {
	case e.prefix.IsValid():
		return e.prefix.Contains(ip.Unmap())
	case e.host != "":
		for _, n := range names {
			if n == e.host {
				return true
			}
		}
		return false
	}
	return true // ":port"
}

// Remote says whether a connection to ip:port (whose names the command resolved it from
// are names) goes through the target. A nil Filter sends everything remotely.
func (f *Filter) Remote(ip netip.Addr, port uint16, names []string) bool {
	if f == nil {
		return true
	}
	for _, e := range f.entries {
		if e.match(ip, port, names) {
			return f.listRemote
		}
	}
	return !f.listRemote
}

// RemoteName says whether the name should be resolved by the target's DNS: names that the
// filter sends locally (on any port) are resolved locally.
// ResolveRemotely is the DNS filter's decision for name: listed names go the way the list
// says (a remote list: through the target; a local list: on this machine), the rest the
// other way. A listed short name also matches its expansions by the search domains the
// command's resolver adds (backend is backend.shop.svc.cluster.local). Entries without a
// name (":port", a subnet) do not match a name.
func (f *Filter) ResolveRemotely(name string, search []string) bool {
	if f == nil {
		return true
	}
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	for _, e := range f.entries {
		if e.host == "" {
			continue
		}
		if e.host == name {
			return f.listRemote
		}
		for _, s := range search {
			if e.host+"."+strings.TrimSuffix(strings.ToLower(s), ".") == name {
				return f.listRemote
			}
		}
	}
	return !f.listRemote
}

func (f *Filter) RemoteName(name string) bool {
	if f == nil {
		return true
	}
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	for _, e := range f.entries {
		if e.host == name {
			return f.listRemote
		}
	}
	return true
}
