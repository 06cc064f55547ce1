package outgoing

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"golang.org/x/net/dns/dnsmessage"
)

// ResolvConf is what name lookups take from the target's resolv.conf.
type ResolvConf struct {
	Search []string
	Ndots  int
}

// ParseResolvConf reads search and ndots (default 1, as the C library's).
func ParseResolvConf(b []byte) ResolvConf {
	rc := ResolvConf{Ndots: 1}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "search", "domain":
			rc.Search = f[1:]
		case "options":
			for _, o := range f[1:] {
				if v, ok := strings.CutPrefix(o, "ndots:"); ok {
					if n, err := strconv.Atoi(v); err == nil {
						rc.Ndots = n
					}
				}
			}
		}
	}
	return rc
}

// candidates are the names to try for host, in the order the C library tries them.
func (rc ResolvConf) candidates(host string) []string {
	if strings.HasSuffix(host, ".") {
		return []string{host}
	}
	var withSearch []string
	for _, s := range rc.Search {
		withSearch = append(withSearch, host+"."+strings.TrimSuffix(s, ".")+".")
	}
	if strings.Count(host, ".") >= rc.Ndots {
		return append([]string{host + "."}, withSearch...)
	}
	return append(withSearch, host+".")
}

// LookupHost resolves host as the target would (its search list, through the session, or
// locally for names the filter keeps local), for programs that hand names to a proxy.
func (h *Handler) LookupHost(ctx context.Context, host string, rc ResolvConf) (netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return ip, nil
	}
	for _, name := range rc.candidates(host) {
		for _, t := range []dnsmessage.Type{dnsmessage.TypeA, dnsmessage.TypeAAAA} {
			ip, err := h.query(ctx, name, t)
			if err == nil {
				return ip, nil
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("%s: no such host (from the target's network)", host)
}

var errNoAnswer = errors.New("no answer")

func (h *Handler) query(ctx context.Context, name string, t dnsmessage.Type) (netip.Addr, error) {
	n, err := dnsmessage.NewName(name)
	if err != nil {
		return netip.Addr{}, err
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 1, RecursionDesired: true})
	_ = b.StartQuestions()
	_ = b.Question(dnsmessage.Question{Name: n, Type: t, Class: dnsmessage.ClassINET})
	q, err := b.Finish()
	if err != nil {
		return netip.Addr{}, err
	}
	answer, err := h.resolve(ctx, q)
	if err != nil {
		return netip.Addr{}, err
	}
	h.learn(answer)
	var p dnsmessage.Parser
	if _, err := p.Start(answer); err != nil {
		return netip.Addr{}, err
	}
	_ = p.SkipAllQuestions()
	for {
		rh, err := p.AnswerHeader()
		if err != nil {
			return netip.Addr{}, errNoAnswer
		}
		switch rh.Type {
		case dnsmessage.TypeA:
			r, err := p.AResource()
			if err == nil {
				return netip.AddrFrom4(r.A), nil
			}
		case dnsmessage.TypeAAAA:
			r, err := p.AAAAResource()
			if err == nil {
				return netip.AddrFrom16(r.AAAA), nil
			}
		default:
			_ = p.SkipAnswer()
		}
	}
}
