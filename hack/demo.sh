#!/usr/bin/env bash
# `make demo`: three local clusters (reusing them when they are up), kubectl-mirrord installed
# with `kubectl mirrord install` the way an admin would (c1 a management-only Primary, c2 the
# Default and a Workload, c3 a Workload), a sample app in c2 and c3, then one session of each
# kind: the target's environment and a file of its ConfigMap, a mirrored request and a stolen
# one reaching a process on this machine. Every command is printed before it runs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
rigdir=/var/lib/mirrord-rig
kubectl=$rigdir/bin/kubectl
kc=$rigdir/kubeconfig
plugin=$root/bin/kubectl-mirrord
ns=demo

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '\033[2m$ %s\033[0m\n' "$*"; }
run() { show "$*"; "$@"; }

if [ -e "$rigdir" ]; then
  say "Local clusters are up"
else
  say "Bringing up three local clusters (kubeconfigs in $kc)"
  make --no-print-directory clusters
fi
say "This build's image goes to the clusters' registry, as a release's to yours"
image=$(bin/rig push bin/images/kubectl-mirrord.tar "kubectl-mirrord:$(git describe --tags --always --dirty 2>/dev/null || echo dev)")
echo "$image"
k() { local c=$1; shift; "$kubectl" --kubeconfig "$kc/$c.yaml" "$@"; }

say "Admin: install the roles with kubectl mirrord install (members first, then the Primary)"
for pair in c3:workload c2:workload-default c1:primary-management-only; do
  c=${pair%%:*} role=${pair#*:}
  run "$plugin" --kubeconfig "$kc/$c.yaml" install --role "$role" --cluster-name "$c" --image "$image"
done

say "Admin: register the members with the Primary (c1)"
run "$plugin" --kubeconfig "$kc/c1.yaml" cluster register c2 --member-kubeconfig "$kc/c2.yaml" --workload --default
run "$plugin" --kubeconfig "$kc/c1.yaml" cluster register c3 --member-kubeconfig "$kc/c3.yaml" --workload

say "A sample app: deploy/api in namespace $ns of c2 and c3, with ConfigMap app mounted at /etc/app"
for c in c1 c2 c3; do k "$c" create namespace "$ns" --dry-run=client -o yaml | k "$c" apply -f - >/dev/null; done
for c in c2 c3; do
  k "$c" -n "$ns" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: ConfigMap
metadata: {name: app}
data: {greeting: "hello from the ConfigMap of $c"}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      volumes: [{name: app, configMap: {name: app}}]
      containers:
      - name: app
        image: mirrord.local/echo:rig
        imagePullPolicy: Never
        args: [serve, -addr, ":8080", -log]
        env: [{name: CLUSTER_NAME, value: $c}]
        ports: [{name: http, containerPort: 8080}]
        volumeMounts: [{name: app, mountPath: /etc/app}]
---
apiVersion: v1
kind: Service
metadata: {name: api}
spec:
  selector: {app: api}
  ports: [{port: 8080, targetPort: http}]
EOF
  k "$c" -n "$ns" rollout status deploy/api --timeout=120s >/dev/null
done
pod_c3=$(k c3 -n "$ns" get pod -l app=api --field-selector status.phase=Running -o jsonpath='{.items[0].status.podIP}')

say "kubectl mirrord status (on the Primary)"
run "$plugin" --kubeconfig "$kc/c1.yaml" status

# A local server that says which requests reach it: the sample app, built for this machine.
go build -o bin/demo-echo ./test/images/echo
pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

say "1. The target's environment, a file of its ConfigMap, a Service of the Default cluster (c2) by name"
run "$plugin" --kubeconfig "$kc/c1.yaml" -n "$ns" exec -t deploy/api --incoming off -- \
  sh -c 'echo "CLUSTER_NAME=$CLUSTER_NAME"; cat /etc/app/greeting; echo; bin/demo-echo get http://api:8080/from-your-machine'

# start_session LOG ARGS...: exec in the background until its command runs.
start_session() {
  local log=$1; shift
  show "$plugin -n $ns exec $* &"
  "$plugin" --kubeconfig "$kc/c1.yaml" -n "$ns" exec "$@" >"$log" 2>&1 &
  pids+=($!)
  for _ in $(seq 300); do grep -q "mirrord: running" "$log" && return 0; sleep 0.1; done
  cat "$log"; return 1
}

say "2. Mirror: a request to the target in c3 is copied to your local server; the target answers it"
start_session /tmp/mirrord-demo-mirror.log -t deploy/api --ports 8080 -- bin/demo-echo serve -addr 127.0.0.1:8080 -log
run bin/demo-echo get "http://$pod_c3:8080/mirrored"
echo
for _ in $(seq 100); do grep -q " got GET /mirrored" /tmp/mirrord-demo-mirror.log && break; sleep 0.1; done
show "your local server's log:"; grep " got " /tmp/mirrord-demo-mirror.log || echo "(nothing yet)"
cleanup; pids=()
# The next session starts on a target whose agent the last one's end is removing: wait until
# it is gone, so the steal below meets a fresh agent, not one about to go (a session joining
# an agent that is being removed reconnects to the next one, taking seconds).
for _ in $(seq 150); do
  [ -z "$(k c2 -n mirrord-system get jobs -l kubectl-mirrord.io/component=agent -o name)$(k c3 -n mirrord-system get jobs -l kubectl-mirrord.io/component=agent -o name)" ] && break
  sleep 0.2
done

say "3. Steal: requests with X-Demo: me are answered by your local server, the others by the target"
start_session /tmp/mirrord-demo-steal.log -t deploy/api --steal --ports 8080 --http-header-filter '^X-Demo: me$' \
  --env-override 'CLUSTER_NAME=your machine' -- bin/demo-echo serve -addr 127.0.0.1:8080 -log
run bin/demo-echo get -H "X-Demo: me" "http://$pod_c3:8080/stolen"
echo
run bin/demo-echo get "http://$pod_c3:8080/not-mine"
echo
show "your local server's log:"; grep " got " /tmp/mirrord-demo-steal.log || echo "(nothing)"
cleanup; pids=()

say "Sessions end with their command: nothing is left in any cluster"
for _ in $(seq 50); do
  "$plugin" --kubeconfig "$kc/c1.yaml" sessions -A 2>&1 | grep -q "No resources found" && break
  sleep 0.2
done
run "$plugin" --kubeconfig "$kc/c1.yaml" sessions -A

cat <<EOF

Done. Try it yourself:
  export KUBECONFIG=$kc/c1.yaml
  $plugin -n $ns exec -t deploy/api -- bash
Remove everything the demo made on this machine:
  make clusters-down
EOF
