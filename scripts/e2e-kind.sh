#!/usr/bin/env bash
# End-to-end run on a throwaway kind cluster: create it, build and load the image, deploy
# manifests/overlays/kind, run the kubelet-stop and force-delete-pod experiments against it,
# and collect the chaos journals and the checker's verdict. Cleans up after itself.
#
# Needs a Docker engine, kind (>= v0.27) and kubectl on PATH, and the project's virtualenv
# (scripts/bootstrap.sh) for `chaos`. CI cannot run this (no Docker engine, no cluster there);
# see docs/kubernetes.md. Exit status: 0 when the game day succeeded (each experiment's steady
# state held before and after, its method ran within its probes' tolerances, the verdict is
# VALID: checker/gameday/result.py) and the checker's verdict is VALID, 1 otherwise (the reasons
# are printed), 2 for usage or missing tools.
set -euo pipefail

usage() {
  printf '%s\n' \
    "usage: scripts/e2e-kind.sh [--name NAME] [--out DIR] [--keep] [--skip-build]" \
    "" \
    "  --name NAME    kind cluster name (default: checker-e2e); must not exist yet" \
    "  --out DIR      journals, verdict and diagnostics (default: out/e2e-<UTC time>)" \
    "  --keep         keep the cluster afterwards for a look (KUBECONFIG is in DIR)" \
    "  --skip-build   reuse an already built mysql-chaos-checker:dev image"
}

cd "$(dirname "$0")/.."
repo=$PWD
cluster=checker-e2e
out=""
keep=0
build=1
image=mysql-chaos-checker:dev
# The privileged helper image probes.kubernetes runs on a node to stop its kubelet: the
# experiments' `helper_image` (tests/manifests/test_e2e_script.py keeps the two equal). kind
# nodes cannot pull what the host has not loaded into them when offline or rate-limited.
helper_image=debian:12.9-slim@sha256:f70dc8d6a8b6a06824c92471a1a258030836b26b043881358b967bf73de7c5ab
overlay=manifests/overlays/kind
kind_config=manifests/overlays/kind/kind-cluster.yaml
experiments=(kubelet-stop force-delete-pod)
local_port=18080

say() { printf 'e2e: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 2; }

while (($#)); do
  case $1 in
    --name) [[ $# -ge 2 ]] || die "--name needs a value"; cluster=$2; shift 2 ;;
    --out) [[ $# -ge 2 ]] || die "--out needs a value"; out=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --skip-build) build=0; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done

need() {
  command -v "$1" >/dev/null 2>&1 || die "$1 not found on PATH: $2"
}
need docker "install Docker (https://docs.docker.com/engine/install/) and start its engine"
need kind "install kind >= v0.27 (https://kind.sigs.k8s.io/docs/user/quick-start/#installation)"
need kubectl "install kubectl, or run scripts/bootstrap.sh and put .venv/bin on PATH"
need curl "install curl (apt-get install curl)"
python=$repo/.venv/bin/python
[[ -x $python ]] || die "no $python: run scripts/bootstrap.sh first"
docker info >/dev/null 2>&1 || die "the Docker engine does not answer (docker info failed): start it, or check your permissions"
for e in "${experiments[@]}"; do
  [[ -f experiments/$e.json ]] || die "experiments/$e.json is missing"
done
if kind get clusters 2>/dev/null | grep -qx -- "$cluster"; then
  die "a kind cluster named $cluster already exists; delete it (kind delete cluster --name $cluster) or pass --name"
fi

out=${out:-out/e2e-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
# A kubeconfig of our own: never touch the user's current context.
export KUBECONFIG=$out/kubeconfig
created=0
pf_pid=""

collect() {
  say "collecting diagnostics into $out"
  kubectl get nodes -o wide >"$out/nodes.txt" 2>&1 || true
  kubectl get pods -A -o wide >"$out/pods.txt" 2>&1 || true
  kubectl get events -A --sort-by=.lastTimestamp >"$out/events.txt" 2>&1 || true
  kubectl -n mysql logs deployment/checker --tail=-1 >"$out/checker.log" 2>&1 || true
  for i in 0 1 2; do
    kubectl -n mysql logs "mysql-$i" --all-containers --prefix >"$out/mysql-$i.log" 2>&1 || true
  done
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [[ -n $pf_pid ]]; then kill "$pf_pid" 2>/dev/null || true; fi
  if ((created)); then
    collect
    if ((keep)); then
      say "keeping cluster $cluster (KUBECONFIG=$KUBECONFIG); delete it with: kind delete cluster --name $cluster"
    else
      say "deleting cluster $cluster"
      kind delete cluster --name "$cluster" >&2 || say "warning: kind delete cluster failed"
    fi
  fi
  say "results in $out"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Wait for a Job to finish: 0 once it is Complete, 1 as soon as it is Failed (backoffLimit
# reached, or its activeDeadlineSeconds passed) or after `timeout` seconds. Polls both conditions:
# `kubectl wait --for=condition=complete` alone would sit out its whole timeout on a failed Job.
wait_job() {
  local ns=$1 job=$2 timeout=$3 start=$SECONDS conditions
  while ((SECONDS - start < timeout)); do
    conditions=$(kubectl -n "$ns" get job "$job" \
      -o 'jsonpath={range .status.conditions[?(@.status=="True")]}{.type}{" "}{end}' 2>/dev/null || true)
    case " $conditions " in
      *" Complete "*) return 0 ;;
      *" Failed "*)
        say "job $ns/$job failed: $(kubectl -n "$ns" get job "$job" \
          -o 'jsonpath={.status.conditions[?(@.type=="Failed")].message}' 2>/dev/null || true)"
        return 1
        ;;
    esac
    sleep 5
  done
  say "job $ns/$job did not finish within ${timeout}s"
  return 1
}

# Each game-day run's result and, when it is not a success, why (gameday_run_done log lines).
print_results() {
  "$python" - "$1" <<'PY' >&2
import json
import sys

found = False
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    try:
        event = json.loads(line)
    except ValueError:
        continue
    if not isinstance(event, dict) or event.get("event") != "gameday_run_done":
        continue
    found = True
    print(f"e2e: {event.get('experiment')}: {event.get('result')} (verdict {event.get('valid')})")
    for reason in event.get("reasons") or []:
        print(f"e2e:   - {reason}")
if not found:
    print(f"e2e: no finished game-day run in {sys.argv[1]}")
PY
}

# Random passwords and token for this throwaway cluster; never written to the repository.
rand() { "$python" -c 'import secrets; print(secrets.token_hex(16))'; }
api_token=$(rand)

say "creating kind cluster $cluster"
created=1
kind create cluster --name "$cluster" --config "$kind_config" --kubeconfig "$KUBECONFIG" --wait 180s >&2

if ((build)); then
  say "building $image"
  docker build -t "$image" . >&2
fi
say "creating namespaces and Secrets"
kubectl kustomize "$overlay" >"$out/rendered.yaml"

# Every image the run needs, loaded into every node (`kind load docker-image`): the checker's,
# the others the manifests name (MySQL) and the kubelet helper's. Pulled first when missing.
mapfile -t images < <(
  { sed -n 's/^[[:space:]]*image:[[:space:]]*//p' "$out/rendered.yaml"; echo "$helper_image"; } |
    tr -d "\"'" | sort -u
)
for img in "${images[@]}"; do
  if [[ $img != "$image" ]] && ! docker image inspect "$img" >/dev/null 2>&1; then
    say "pulling $img"
    docker pull "$img" >&2
  fi
  say "loading $img into the cluster's nodes"
  kind load docker-image "$img" --name "$cluster" >&2
done
kubectl apply -f - >&2 <<'EOF'
apiVersion: v1
kind: Namespace
metadata: {name: mysql}
---
apiVersion: v1
kind: Namespace
metadata: {name: chaos}
EOF
kubectl -n mysql create secret generic mysql-admin \
  --from-literal=password="$(rand)" --from-literal=replication-password="$(rand)" >&2
checker_password=$(rand)
kubectl -n mysql create secret generic checker-mysql --from-literal=mysql-password="$checker_password" >&2
kubectl -n mysql create secret generic checker-api --from-literal=token="$api_token" >&2
# The chaos runner lives in another namespace and Secrets do not cross namespaces: it gets its
# own copies (the steady-state probes write a marker as the checker's user).
kubectl -n chaos create secret generic checker-api --from-literal=token="$api_token" >&2
kubectl -n chaos create secret generic checker-mysql --from-literal=mysql-password="$checker_password" >&2
# MySQL's TLS: a throwaway CA and a server certificate naming every host the checker uses
# (mysql-N.mysql, mysql-read, and their qualified names), for CHECKER_TLS=verify-identity.
tls_dir=$(mktemp -d)
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=e2e mysql CA" \
  -keyout "$tls_dir/ca.key" -out "$tls_dir/ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=mysql" \
  -keyout "$tls_dir/tls.key" -out "$tls_dir/tls.csr" 2>/dev/null
san="DNS:*.mysql,DNS:*.mysql.mysql.svc,DNS:*.mysql.mysql.svc.cluster.local,DNS:mysql-read"
san="$san,DNS:mysql-read.mysql.svc,DNS:mysql-read.mysql.svc.cluster.local"
openssl x509 -req -in "$tls_dir/tls.csr" -CA "$tls_dir/ca.crt" -CAkey "$tls_dir/ca.key" \
  -CAcreateserial -days 2 -extfile <(printf 'subjectAltName=%s\n' "$san") \
  -out "$tls_dir/tls.crt" 2>/dev/null
kubectl -n mysql create secret generic mysql-tls --from-file=ca.crt="$tls_dir/ca.crt" \
  --from-file=tls.crt="$tls_dir/tls.crt" --from-file=tls.key="$tls_dir/tls.key" >&2
rm -rf "$tls_dir"

say "applying $overlay"
kubectl apply -f "$out/rendered.yaml" >&2

say "waiting for MySQL (first boot initialises and clones each replica: a few minutes)"
kubectl -n mysql rollout status statefulset/mysql --timeout=900s >&2
say "waiting for the checker-setup Job"
wait_job mysql checker-setup 600 || exit 1
say "waiting for the checker"
kubectl -n mysql rollout status deployment/checker --timeout=300s >&2

kubectl -n mysql port-forward service/checker "$local_port:8080" >"$out/port-forward.log" 2>&1 &
pf_pid=$!
checker_url=http://127.0.0.1:$local_port
for _ in $(seq 1 60); do
  curl -fsS "$checker_url/healthz" >/dev/null 2>&1 && break
  sleep 1
done
curl -fsS "$checker_url/healthz" >/dev/null || die "the checker does not answer on $checker_url/healthz (see $out/port-forward.log)"

# The experiments run where a real game day runs them: in the cluster, from the game-day
# CronJob's pod (the chaos runner's ServiceAccount, the MySQL Services reachable by name, the
# kubelet stopped by the privileged helper pod through nsenter — kind nodes run systemd).
job=e2e-$(date -u +%H%M%S)
say "running the game day in the cluster: job $job from cronjob/gameday (kubelet-stop, force-delete-pod)"
kubectl -n chaos create job "$job" --from=cronjob/gameday >&2
# `checker gameday --once` exits non-zero unless every run succeeded, and the Job (backoffLimit
# 0) fails with it: the Job's outcome is the game day's result.
deadline=$(kubectl -n chaos get cronjob gameday -o 'jsonpath={.spec.jobTemplate.spec.activeDeadlineSeconds}')
failed=0
if ! wait_job chaos "$job" $((${deadline:-7200} + 300)); then
  say "the game day did not succeed (see $out/gameday.log)"
  failed=1
fi
kubectl -n chaos logs "job/$job" --tail=-1 >"$out/gameday.log" 2>&1 || true
print_results "$out/gameday.log"

say "fetching the checker's verdict"
# /verdict reveals hosts and GTID sets: it wants the API token like every revealing route.
curl -fsS -H "Authorization: Bearer $api_token" "$checker_url/verdict" >"$out/verdict.json" || { say "could not fetch $checker_url/verdict"; exit 1; }
verdict=$("$python" -c 'import json, sys; v = json.load(open(sys.argv[1]))["valid"]; print({True: "VALID", False: "INVALID"}.get(v, "UNKNOWN"))' "$out/verdict.json")
say "verdict: $verdict"
[[ $verdict == VALID && $failed == 0 ]] || exit 1
