package stateful

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMountsAreTheVolumes(t *testing.T) {
	proc := t.TempDir()
	if err := os.MkdirAll(filepath.Join(proc, "42"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A container's mountinfo, as containerd sets it up for a pod with a ConfigMap, the
	// service-account token and an emptyDir with a space in its path.
	info := `1529 1443 0:170 / / rw,relatime master:410 - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w
1530 1529 0:172 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
1531 1529 0:173 / /dev rw,nosuid - tmpfs tmpfs rw,size=65536k,mode=755
1532 1531 0:174 / /dev/pts rw,nosuid,noexec,relatime - devpts devpts rw
1535 1529 0:175 / /sys ro,nosuid,nodev,noexec,relatime - sysfs sysfs ro
1538 1529 253:1 /var/lib/kubelet/pods/p/etc-hosts /etc/hosts rw,relatime - ext4 /dev/vda rw
1539 1531 253:1 /var/lib/kubelet/pods/p/containers/app/x /dev/termination-log rw,relatime - ext4 /dev/vda rw
1540 1529 253:1 /var/lib/containerd/s/hostname /etc/hostname rw,relatime - ext4 /dev/vda rw
1541 1529 253:1 /var/lib/containerd/s/resolv.conf /etc/resolv.conf rw,relatime - ext4 /dev/vda rw
1542 1529 253:1 /var/lib/kubelet/pods/p/volumes/kubernetes.io~configmap/cfg /etc/app ro,relatime - ext4 /dev/vda rw
1543 1529 0:160 / /var/run/secrets/kubernetes.io/serviceaccount ro,relatime - tmpfs tmpfs rw,size=4k
1544 1529 253:1 /var/lib/kubelet/pods/p/volumes/kubernetes.io~empty-dir/d /data\040dir rw,relatime - ext4 /dev/vda rw
1545 1529 253:1 /var/lib/kubelet/pods/p/volumes/kubernetes.io~empty-dir/d /data\040dir rw,relatime - ext4 /dev/vda rw
`
	if err := os.WriteFile(filepath.Join(proc, "42", "mountinfo"), []byte(info), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Mounts(proc, 42, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []Mount{{Path: "/data dir"}, {Path: "/etc/app"}, {Path: "/var/run/secrets/kubernetes.io/serviceaccount"}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}
