//go:build linux

package steal

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/klog/v2"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/internal/procfs"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/netns"
)

// iptRedirector keeps one slot's rules in a chain of iptables' nat table, for kernels where
// nftables' owned tables are unavailable (no nf_tables, or Linux < 5.12). Unlike an owned
// table nothing removes the chain when the agent dies, so the agent runs under a supervisor
// that removes it (Supervise), and every agent's start removes the chains of dead agents
// (sweepDead), for when both died.
//
// The slot's chain, MIRRORD-STEAL-NN, starts with an owner rule naming the agent's process;
// PREROUTING and OUTPUT (to the pod's own addresses) jump to the slots' chains in slot order.
type iptRedirector struct {
	mu       sync.Mutex
	families []xtables // IPv4, and IPv6 when the kernel has its nat table
	session  string
	slot     int
	chain    string
	to       uint16
	rules    map[uint16]portRules
}

// portRules is what one stolen port's rules were made with.
type portRules struct {
	filtered bool
	except   []netip.Addr
}

// chainPrefix names the slot chains (an iptables chain name has at most 28 characters).
const chainPrefix = "MIRRORD-STEAL-"

// xtables runs one iptables binary (iptables-legacy, ip6tables-nft, ...) on the nat table of
// a network namespace.
type xtables struct {
	ns  *netns.Handle
	bin string
}

// xtablesLock is the iptables lock file: the node's (reached through the node's root, as the
// agent has its own /run), so agents and kube-proxy on one node take turns; where the
// node's root is out of reach, one in /dev/shm (the agent's root is read-only), which
// orders this agent's own commands, and the kernel's check of legacy table replacements
// (retried in run) covers the others.
var xtablesLock = sync.OnceValue(func() string {
	if _, err := os.Stat("/proc/1/root/run"); err == nil {
		return "/proc/1/root/run/xtables.lock"
	}
	return "/dev/shm/xtables.lock"
})

// run runs the binary with args on the nat table, inside the namespace (a child forked from
// a thread in a namespace starts in it).
func (x xtables) run(args ...string) (string, error) {
	full := append([]string{"-w", "5", "-t", "nat"}, args...)
	var out []byte
	var err error
	for attempt := 0; ; attempt++ {
		nsErr := x.ns.Do(func() error {
			cmd := exec.Command(x.bin, full...)
			cmd.Env = append(os.Environ(), "XTABLES_LOCKFILE="+xtablesLock())
			out, err = cmd.CombinedOutput()
			return nil
		})
		if nsErr != nil {
			return "", nsErr
		}
		// Legacy iptables replaces the whole table; the kernel refuses a replacement based
		// on a table another process changed meanwhile (EAGAIN): read it again and retry.
		if err != nil && strings.Contains(string(out), "Resource temporarily unavailable") && attempt < 10 {
			time.Sleep(time.Duration(attempt+1) * 10 * time.Millisecond)
			continue
		}
		break
	}
	if err != nil {
		var ee *exec.Error
		if errors.As(err, &ee) {
			return "", fmt.Errorf("%s is not installed in the agent's image: %w", x.bin, err)
		}
		return string(out), fmt.Errorf("%s %s: %s", x.bin, strings.Join(full, " "), strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// binaries are an iptables backend's IPv4 and IPv6 commands.
func binaries(b Backend) (v4, v6 string) {
	if b == IPTablesLegacy {
		return "iptables-legacy", "ip6tables-legacy"
	}
	return "iptables-nft", "ip6tables-nft"
}

// newIPT takes the first free slot in ns for session, redirecting to port to. The owner
// rule names this process, so a later agent can tell whether the chain is still in use.
func newIPT(ns *netns.Handle, backend Backend, session string, to uint16) (*iptRedirector, error) {
	v4bin, v6bin := binaries(backend)
	v4, v6 := xtables{ns, v4bin}, xtables{ns, v6bin}
	families := []xtables{v4}
	if _, err := v6.run("-S", "PREROUTING"); err == nil {
		families = append(families, v6)
	} else {
		klog.Background().V(1).Info("No IPv6 nat table: stealing IPv4 connections only", "err", err)
	}
	for _, x := range families {
		if err := sweepDead(x, "/proc"); err != nil {
			return nil, err
		}
	}
	owner, err := ownerComment("/proc", os.Getpid(), session)
	if err != nil {
		return nil, err
	}
	for slot := 1; slot <= MaxSlots; slot++ {
		chain := fmt.Sprintf("%s%02d", chainPrefix, slot)
		// Tell the supervisor before the chain exists, so it is removed whenever this dies.
		if err := reportChain(ns, backend, chain); err != nil {
			return nil, err
		}
		// Exclusive create: the IPv4 chain's name is the slot's lock.
		if out, err := v4.run("-N", chain); err != nil {
			if strings.Contains(out, "already exists") {
				continue
			}
			return nil, fmt.Errorf("creating iptables chain %s (the agent needs NET_ADMIN in the target's namespace): %w", chain, err)
		}
		r := &iptRedirector{families: families, session: session, slot: slot, chain: chain, to: to, rules: map[uint16]portRules{}}
		if err := r.setUp(owner); err != nil {
			_ = r.close()
			return nil, err
		}
		return r, nil
	}
	return nil, fmt.Errorf("%d sessions already steal from this target: end one first", MaxSlots)
}

// setUp tags the slot's chain with its owner and jumps to it from PREROUTING and OUTPUT,
// after the earlier slots' jumps.
func (r *iptRedirector) setUp(owner string) error {
	for i, x := range r.families {
		if i > 0 {
			// A dead agent's IPv6 chain may remain where its IPv4 one was swept: reuse it.
			if out, err := x.run("-N", r.chain); err != nil && !strings.Contains(out, "already exists") {
				return err
			}
			if _, err := x.run("-F", r.chain); err != nil {
				return err
			}
		}
		// The owner rule matches nothing (it has no target) but uses conntrack, which keeps
		// conntrack on in the namespace for as long as the chain exists: when a port's
		// REDIRECT rule, the last user, went, the kernel would stop tracking, and the
		// connections already stolen would lose their translation and be reset.
		if _, err := x.run("-A", r.chain, "-m", "conntrack", "--ctstate", "INVALID", "-m", "comment", "--comment", owner); err != nil {
			return err
		}
		for _, hook := range []string{"PREROUTING", "OUTPUT"} {
			out, err := x.run("-S", hook)
			if err != nil {
				return err
			}
			pos := strconv.Itoa(jumpPosition(out, r.slot))
			if _, err := x.run(append([]string{"-I", hook, pos}, jumpSpec(hook, r.chain)...)...); err != nil {
				return err
			}
		}
	}
	return nil
}

// jumpSpec is the rule that sends hook's packets through chain: from OUTPUT, only those to
// the pod's own addresses.
func jumpSpec(hook, chain string) []string {
	if hook == "OUTPUT" {
		return []string{"-m", "addrtype", "--dst-type", "LOCAL", "-j", chain}
	}
	return []string{"-j", chain}
}

var jumpRE = regexp.MustCompile(`^-A \S+ .*-j ` + chainPrefix + `(\d+)\b`)

// jumpPosition is where slot's jump goes in a hook chain listed by -S: after the jumps of
// the earlier slots (1-based; the slots' jumps stay at the top, before a mesh's redirects).
func jumpPosition(listing string, slot int) int {
	pos := 1
	for _, line := range strings.Split(listing, "\n") {
		if m := jumpRE.FindStringSubmatch(line); m != nil {
			if n, _ := strconv.Atoi(m[1]); n < slot {
				pos++
			}
		}
	}
	return pos
}

func (r *iptRedirector) Slot() int { return r.slot }

// portSpec is the rule of a stolen port: a new TCP connection (SYN without ACK) to port
// not yet seen by this slot goes to the agent's listener.
func (r *iptRedirector) portSpec(port uint16, filtered bool) []string {
	bit := uint32(1) << (r.slot - 1)
	f := 0
	if filtered {
		f = 1
	}
	return []string{r.chain, "-p", "tcp", "--dport", strconv.Itoa(int(port)), "--tcp-flags", "SYN,ACK", "SYN",
		"-m", "mark", "!", "--mark", fmt.Sprintf("0x%x/0x%x", markBase|bit, markMask|bit),
		"-m", "comment", "--comment", fmt.Sprintf("mirrord1 port=%d filtered=%d session=%s", port, f, r.session),
		"-j", "REDIRECT", "--to-ports", strconv.Itoa(int(r.to))}
}

// exceptSpec is the rule that lets a new connection to port from addr go on to the target,
// placed before the port's redirect.
func (r *iptRedirector) exceptSpec(port uint16, addr netip.Addr) []string {
	return []string{r.chain, "-p", "tcp", "--dport", strconv.Itoa(int(port)), "-s", addr.String(), "--tcp-flags", "SYN,ACK", "SYN",
		"-m", "comment", "--comment", fmt.Sprintf("mirrord1-except port=%d session=%s", port, r.session), "-j", "RETURN"}
}

// specs are a port's rules in one family (0: IPv4, 1: IPv6), in order.
func (r *iptRedirector) specs(family int, port uint16, pr portRules) [][]string {
	var out [][]string
	for _, a := range pr.except {
		if a = a.Unmap(); a.Is6() == (family == 1) {
			out = append(out, r.exceptSpec(port, a))
		}
	}
	return append(out, r.portSpec(port, pr.filtered))
}

func (r *iptRedirector) add(port uint16, filtered bool, except []netip.Addr) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.rules[port]; ok {
		return nil
	}
	if err := r.conflict(port, filtered); err != nil {
		return err
	}
	pr := portRules{filtered: filtered, except: except}
	r.rules[port] = pr
	for i, x := range r.families {
		for _, spec := range r.specs(i, port, pr) {
			if _, err := x.run(append([]string{"-A"}, spec...)...); err != nil {
				r.removeLocked(port)
				return fmt.Errorf("adding the redirect of port %d: %w", port, err)
			}
		}
	}
	// Two sessions may have checked at once: the later slot looks again and backs off.
	if err := r.conflict(port, filtered); err != nil {
		r.removeLocked(port)
		return err
	}
	return nil
}

var portRuleRE = regexp.MustCompile(`^-A (` + chainPrefix + `\d+) .*--comment "?mirrord1 port=(\d+) filtered=(\d) session=([^" ]*)`)

// conflict looks at the other slots' steals of port.
func (r *iptRedirector) conflict(port uint16, filtered bool) error {
	out, err := r.families[0].run("-S")
	if err != nil {
		return err
	}
	for _, line := range strings.Split(out, "\n") {
		m := portRuleRE.FindStringSubmatch(line)
		if m == nil || m[1] == r.chain || m[2] != strconv.Itoa(int(port)) {
			continue
		}
		if theirs := m[3] == "1"; !theirs || !filtered {
			return &ConflictError{Port: port, Session: m[4], Whole: !theirs}
		}
	}
	return nil
}

func (r *iptRedirector) remove(port uint16) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.removeLocked(port)
}

func (r *iptRedirector) removeLocked(port uint16) error {
	pr, ok := r.rules[port]
	if !ok {
		return nil
	}
	var errs []error
	for i, x := range r.families {
		for _, spec := range r.specs(i, port, pr) {
			if out, err := x.run(append([]string{"-D"}, spec...)...); err != nil && !isMissing(out) {
				errs = append(errs, fmt.Errorf("removing the redirect of port %d: %w", port, err))
			}
		}
	}
	delete(r.rules, port)
	return errors.Join(errs...)
}

// releaseAll removes every port's rule; the chain, its owner rule and the jumps stay until
// close.
func (r *iptRedirector) releaseAll() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for port := range r.rules {
		errs = append(errs, r.removeLocked(port))
	}
	return errors.Join(errs...)
}

// close removes the jumps and the chain.
func (r *iptRedirector) close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for _, x := range r.families {
		errs = append(errs, removeChain(x, r.chain))
	}
	clear(r.rules)
	return errors.Join(errs...)
}

// removeChain removes chain and every jump to it; a chain already gone is no error.
func removeChain(x xtables, chain string) error {
	for _, hook := range []string{"PREROUTING", "OUTPUT"} {
		for {
			out, err := x.run(append([]string{"-D", hook}, jumpSpec(hook, chain)...)...)
			if err != nil {
				if isMissing(out) {
					break
				}
				return err
			}
		}
	}
	if out, err := x.run("-F", chain); err != nil && !isMissing(out) {
		return err
	}
	if out, err := x.run("-X", chain); err != nil && !isMissing(out) {
		return err
	}
	return nil
}

// isMissing says iptables' output is about a rule or chain that does not exist.
func isMissing(out string) bool {
	for _, s := range []string{"does a matching rule exist", "No chain/target/match by that name", "Couldn't load target", "doesn't exist", "does not exist", "Bad rule"} {
		if strings.Contains(out, s) {
			return true
		}
	}
	return false
}

var ownerRE = regexp.MustCompile(`^-A (` + chainPrefix + `\d+) .*--comment "?mirrord-owner pid=(\d+) start=(\d+)`)

// ownerComment names process pid (with its start time, as PIDs are reused) and its session.
func ownerComment(procRoot string, pid int, session string) (string, error) {
	start, _, err := procStat(procRoot, pid)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("mirrord-owner pid=%d start=%d session=%s", pid, start, session), nil
}

// sweepDead removes the slot chains whose owner process is gone (or a zombie, which will
// never remove them). A chain without an owner rule is being made by a live agent: it stays,
// unless it is one of orphans (chains a dead agent reported it might make).
func sweepDead(x xtables, procRoot string, orphans ...string) error {
	out, err := x.run("-S")
	if err != nil {
		return fmt.Errorf("listing iptables' nat table (the agent needs NET_ADMIN in the target's namespace): %w", err)
	}
	var dead []string
	for chain, owned := range slotChains(out) {
		alive := owned.pid != 0 && processAlive(procRoot, owned.pid, owned.start)
		if (owned.pid != 0 && !alive) || (owned.pid == 0 && slices.Contains(orphans, chain)) {
			dead = append(dead, chain)
		}
	}
	slices.Sort(dead)
	for _, chain := range dead {
		if err := removeChain(x, chain); err != nil {
			return fmt.Errorf("removing %s, left by a dead agent: %w", chain, err)
		}
		klog.Background().Info("Removed the steal rules of a dead agent", "chain", chain, "iptables", x.bin)
	}
	return nil
}

// owner is the process an owner rule names; pid 0 when the chain has no owner rule.
type owner struct {
	pid   int
	start uint64
}

var chainRE = regexp.MustCompile(`^-N (` + chainPrefix + `\d+)$`)

// slotChains are the slot chains of a -S listing with their owners.
func slotChains(listing string) map[string]owner {
	chains := map[string]owner{}
	for _, line := range strings.Split(listing, "\n") {
		line = strings.TrimSpace(line)
		if m := chainRE.FindStringSubmatch(line); m != nil {
			if _, ok := chains[m[1]]; !ok {
				chains[m[1]] = owner{}
			}
		}
		if m := ownerRE.FindStringSubmatch(line); m != nil {
			pid, _ := strconv.Atoi(m[2])
			start, _ := strconv.ParseUint(m[3], 10, 64)
			chains[m[1]] = owner{pid: pid, start: start}
		}
	}
	return chains
}

// processAlive says whether process pid, started at start, still runs.
func processAlive(procRoot string, pid int, start uint64) bool {
	s, state, err := procStat(procRoot, pid)
	return err == nil && s == start && state != "Z" && state != "X"
}

// procStat reads a process's start time (clock ticks since boot) and state.
func procStat(procRoot string, pid int) (start uint64, state string, err error) {
	f := procfs.StatFields(procRoot, pid)
	if len(f) < 20 {
		return 0, "", fmt.Errorf("%s/%d/stat: unreadable or in an unexpected format", procRoot, pid)
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	return start, f[0], err
}
