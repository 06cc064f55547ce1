// Package steal diverts new TCP connections to a target's ports to the agent, inside the
// target's network namespace, and hands them to the session or passes them on unchanged.
//
// Several sessions can steal from one target at once. Each agent holds a slot (1-16): an
// nftables table named for it, owned by the agent's netlink socket, whose NAT chains run in
// slot order. A connection reaches the first slot stealing its port; requests that slot's
// filter does not match leave it on a passthrough connection marked with the bits of every
// slot up to its own, which the next slots' rules catch and the earlier ones skip, until the
// last passes them to the target itself. A whole-port steal shares its port with nobody.
package steal
