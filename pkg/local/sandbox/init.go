//go:build linux

package sandbox

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"unsafe"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ctlFD is the socket to the parent (the init's first ExtraFile).
const ctlFD = 3

// Init is the sandbox's first process: it never returns. It sets the namespaces up, reports
// to the parent, waits for the go-ahead and becomes the command.
func Init() {
	if len(os.Args) > 2 && os.Args[2] == supplierArg {
		supplySockets(ctlFD)
		os.Exit(0)
	}
	parentPID := os.Getppid()
	ctl := os.NewFile(ctlFD, "sandbox-ctl")
	buf := make([]byte, 1<<20)
	n, err := ctl.Read(buf)
	if err != nil {
		os.Exit(125)
	}
	var cfg initConfig
	if err := json.Unmarshal(buf[:n], &cfg); err != nil {
		report(ctl, initReport{Error: "sandbox configuration: " + err.Error()}, nil)
		os.Exit(125)
	}
	rep, fds, err := setup(cfg)
	if err != nil {
		report(ctl, initReport{Error: err.Error()}, nil)
		os.Exit(125)
	}
	if err := report(ctl, rep, fds); err != nil {
		os.Exit(125)
	}
	for _, fd := range fds {
		_ = unix.Close(fd)
	}
	// Wait for the parent to serve the network; EOF means it is gone.
	if n, err := ctl.Read(buf); err != nil || string(buf[:n]) != "go" {
		os.Exit(125)
	}
	ctl.Close()
	path, err := LookPath(cfg.Command[0], cfg.Env)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kubectl-mirrord: %v\n", err)
		os.Exit(127)
	}
	// The parent-death signal belongs to a thread. The parent set it on this process's first
	// thread, but the Go runtime may run this goroutine on another, and execve from another
	// thread makes that thread the process, without it: set it again on the thread that
	// execs (then kubectl mirrord's kill -9 always takes the command with it).
	runtime.LockOSThread()
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		os.Exit(125)
	}
	if os.Getppid() != parentPID {
		os.Exit(125) // the parent died before the signal was set again
	}
	err = unix.Exec(path, cfg.Command, cfg.Env)
	fmt.Fprintf(os.Stderr, "kubectl-mirrord: running %s: %v\n", cfg.Command[0], err)
	os.Exit(126)
}

func report(ctl *os.File, r initReport, fds []int) error {
	b, _ := json.Marshal(r)
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	return unix.Sendmsg(int(ctl.Fd()), b, oob, nil, 0)
}

// setup builds the sandbox and returns the descriptors for the parent: the TUN, then one
// listener per local port, then one FUSE device per mounted remote directory.
func setup(cfg initConfig) (initReport, []int, error) {
	var rep initReport
	// Nothing mounted here may reach the developer's mount namespace.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return rep, nil, fmt.Errorf("making mounts private: %w", err)
	}
	tun, err := network()
	if err != nil {
		return rep, nil, err
	}
	fds := []int{tun}
	if cfg.Incoming {
		if fd, pid, err := startSupplier(); err != nil {
			rep.NoDelivery = err.Error()
		} else {
			fds = append(fds, fd)
			rep.SupplierPID = pid
		}
	}
	for _, p := range cfg.LocalPorts {
		ln, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			return rep, nil, fmt.Errorf("local port %d: %w", p, err)
		}
		f, err := ln.(*net.TCPListener).File()
		if err != nil {
			return rep, nil, err
		}
		fds = append(fds, int(f.Fd()))
	}
	// Remote directories before resolv.conf: shadowing /etc would hide its bind mount.
	m := &mounter{shadowed: map[string]bool{}, programs: programDirs(cfg.Command, cfg.Env), homes: homeDirs(cfg.Env)}
	for _, dir := range cfg.RemoteDirs {
		fd, err := m.mountRemote(dir)
		if err != nil {
			rep.Skipped = append(rep.Skipped, fmt.Sprintf("%s: %v", dir, err))
			continue
		}
		rep.Mounted = append(rep.Mounted, dir)
		fds = append(fds, fd)
	}
	for _, dir := range cfg.MappedDirs {
		fd, err := m.mountMapped(dir)
		if err != nil {
			rep.Skipped = append(rep.Skipped, fmt.Sprintf("%s (feature.fs.mapping): %v", dir, err))
			continue
		}
		rep.Mapped = append(rep.Mapped, dir)
		fds = append(fds, fd)
	}
	if len(cfg.ResolvConf) > 0 {
		if err := bindContent("/etc/resolv.conf", cfg.ResolvConf); err != nil {
			return rep, nil, fmt.Errorf("replacing /etc/resolv.conf: %w", err)
		}
	}
	if cfg.Hostname != "" {
		_ = unix.Sethostname([]byte(cfg.Hostname))
	}
	return rep, fds, nil
}

// bindContent shows content at path: a file on a private tmpfs, bind-mounted over path.
// The tmpfs is mounted on /tmp just long enough to make the file, then detached: the bind
// mount keeps the file alive and /tmp is the developer's again.
func bindContent(path string, content []byte) error {
	const scratch = "/tmp"
	if err := unix.Mount("tmpfs", scratch, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=1m,mode=0755"); err != nil {
		return err
	}
	defer unix.Unmount(scratch, unix.MNT_DETACH)
	file := scratch + "/" + strings.ReplaceAll(strings.TrimPrefix(path, "/"), "/", "-")
	if err := os.WriteFile(file, content, 0o644); err != nil {
		return err
	}
	return unix.Mount(file, path, "", unix.MS_BIND, "")
}

// network brings up lo and tun0 (all traffic, IPv4 and IPv6) and returns tun0's descriptor.
func network() (int, error) {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return -1, err
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return -1, fmt.Errorf("bringing lo up: %w", err)
	}
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("opening /dev/net/tun (%w): on this machine it must be readable and writable by you", err)
	}
	var ifr [unix.IFNAMSIZ + 64]byte
	copy(ifr[:], "tun0")
	*(*uint16)(unsafe.Pointer(&ifr[unix.IFNAMSIZ])) = unix.IFF_TUN | unix.IFF_NO_PI
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETIFF, uintptr(unsafe.Pointer(&ifr[0]))); errno != 0 {
		unix.Close(fd)
		return -1, fmt.Errorf("creating tun0: %w", errno)
	}
	tun, err := netlink.LinkByName("tun0")
	if err != nil {
		return -1, err
	}
	steps := []func() error{
		func() error { return netlink.LinkSetMTU(tun, MTU) },
		func() error { return netlink.AddrAdd(tun, mustAddr(ChildIP+"/32")) },
		func() error {
			return netlink.AddrAdd(tun, &netlink.Addr{IPNet: mustAddr(ChildIP6 + "/128").IPNet, Flags: unix.IFA_F_NODAD})
		},
		func() error { return netlink.LinkSetUp(tun) },
		func() error {
			return netlink.RouteAdd(&netlink.Route{LinkIndex: tun.Attrs().Index, Dst: mustAddr("0.0.0.0/0").IPNet, Src: net.ParseIP(ChildIP)})
		},
		func() error {
			return netlink.RouteAdd(&netlink.Route{LinkIndex: tun.Attrs().Index, Dst: mustAddr("::/0").IPNet, Src: net.ParseIP(ChildIP6)})
		},
		loopbackIncoming,
	}
	for _, step := range steps {
		if err := step(); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("setting up tun0: %w", err)
		}
	}
	return fd, nil
}

func mustAddr(s string) *netlink.Addr {
	a, err := netlink.ParseAddr(s)
	if err != nil {
		panic(err)
	}
	return a
}

// loopbackIncoming makes incoming connections (which arrive on tun0 for ChildIP) reach a
// command that listens on 127.0.0.1 only, as servers in development often do: they are
// DNATed to 127.0.0.1, which route_localnet allows.
func loopbackIncoming() error {
	if err := os.WriteFile("/proc/sys/net/ipv4/conf/all/route_localnet", []byte("1"), 0); err != nil {
		return fmt.Errorf("route_localnet: %w", err)
	}
	if err := os.WriteFile("/proc/sys/net/ipv4/conf/tun0/route_localnet", []byte("1"), 0); err != nil {
		return fmt.Errorf("route_localnet: %w", err)
	}
	c, err := nftables.New()
	if err != nil {
		return err
	}
	t := c.AddTable(&nftables.Table{Name: "mirrord-sandbox", Family: nftables.TableFamilyIPv4})
	ch := c.AddChain(&nftables.Chain{Name: "incoming", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest})
	iface := make([]byte, 16)
	copy(iface, "tun0")
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: iface},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Immediate{Register: 1, Data: net.ParseIP("127.0.0.1").To4()},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1},
	}})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	return nil
}
