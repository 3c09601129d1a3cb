#!/bin/sh
# Recording stand-in for the k3s binary on homelab-nodes test hosts (no real k3s can be
# downloaded there). It answers the calls the node engine makes (--version, server/agent
# start, kubectl get/cordon/uncordon/drain/delete/label/annotate/taint, etcd-snapshot,
# server --cluster-reset) from a small cluster model in a JSON file that all test hosts
# share, and appends every call to a log that the tests read.
STATE_DIR='@STATE_DIR@'
VERSION='@VERSION@'
CONFIG=/etc/rancher/k3s/config.yaml
STATE="$STATE_DIR/state.json"
LOCK="$STATE_DIR/lock"
UNITS=/var/lib/standin-systemd
DB=/var/lib/rancher/k3s/server/db

cfg() {
  [ -f "$CONFIG" ] || return 0
  sed -n "s/^$1:[[:space:]]*//p" "$CONFIG" | head -n 1 | sed 's/^"\(.*\)"$/\1/'
}
NODE=$(cfg node-name)
[ -n "$NODE" ] || NODE=unknown

die() { echo "$*" >&2; exit 1; }
record() { ( flock 9; printf '%s\t%s\n' "$NODE" "$*" >> "$STATE_DIR/calls.log" ) 9>"$LOCK"; }
query() { jq "$@" "$STATE"; }
update() {
  ( flock 9
    out=$(jq "$@" "$STATE") || exit 1
    printf '%s\n' "$out" > "$STATE.tmp" && mv "$STATE.tmp" "$STATE"
  ) 9>"$LOCK"
}

api_up() {
  [ -f /etc/rancher/k3s/k3s.yaml ] && [ -f "$UNITS/k3s" ] \
    && query -e --arg n "$NODE" '.nodes[$n].role == "server" and .nodes[$n].ready' >/dev/null \
    || die "The connection to the server 127.0.0.1:6443 was refused - did you specify the right host or port?"
}

node_exists() {
  query -e --arg n "$1" '.nodes[$n] != null' >/dev/null || die "Error from server (NotFound): nodes \"$1\" not found"
}

NODE_JSON='def node_json($name; $n): {apiVersion: "v1", kind: "Node",
  metadata: {name: $name, labels: $n.labels, annotations: $n.annotations},
  spec: ({unschedulable: $n.unschedulable} + (if ($n.taints | length) > 0 then {taints: $n.taints} else {} end)),
  status: {conditions: [{type: "Ready",
      status: (if $n.ready then "True" else "Unknown" end),
      reason: (if $n.ready then "KubeletReady" else "NodeStatusUnknown" end),
      message: (if $n.ready then "kubelet is posting ready status" else "Kubelet stopped posting node status." end)}],
    addresses: [{type: "InternalIP", address: $n.ip}],
    nodeInfo: {kubeletVersion: $n.version}}};'

start_service() {
  role=$1
  token_file=$(cfg token-file)
  { [ -n "$token_file" ] && [ -f "$token_file" ]; } || die "k3s: token file ${token_file:-(not set)} not found"
  token=$(cat "$token_file")
  url=$(cfg server)
  ip=$(hostname -I | awk '{print $1}')
  if [ "$role" = server ]; then
    epoch=$(query -r '.reset_epoch')
    if [ -n "$url" ] && [ -f "$DB/reset-epoch" ] && [ "$(cat "$DB/reset-epoch")" != "$epoch" ]; then
      die "etcd: this member's data predates the cluster reset; back up and delete $DB, then start k3s again to rejoin"
    fi
    mkdir -p "$DB"
    [ -f "$DB/reset-epoch" ] || echo "$epoch" > "$DB/reset-epoch"
  fi
  ready=true
  [ -e "$STATE_DIR/fail-ready-$NODE" ] && ready=false
  update --arg node "$NODE" --arg role "$role" --arg ip "$ip" --arg token "$token" --arg url "$url" \
    --arg ver "$VERSION" --argjson ready "$ready" '
    if $url == "" then
      (if .cluster == null then .cluster = {token: $token}
       elif .cluster.token != $token then error("cluster-init: the token differs from the cluster token")
       else . end)
    else
      (if .cluster == null then error("failed to get CA certs from " + $url + ": connection refused")
       elif .cluster.token != $token then error("token rejected by " + $url)
       elif ([.nodes[] | select(.role == "server" and .ready and ("https://" + .ip + ":6443") == $url)] | length) == 0
         then error("failed to get CA certs from " + $url + ": connection refused")
       else . end)
    end
    | .nodes[$node] = ((.nodes[$node] // {labels: {}, annotations: {}, taints: [], unschedulable: false})
        + {role: $role, ip: $ip, version: $ver, ready: $ready})
    | .nodes[$node].labels += {"kubernetes.io/hostname": $node, "kubernetes.io/os": "linux"}
    | if $role == "server" then
        .nodes[$node].labels += {"node-role.kubernetes.io/control-plane": "true",
                                 "node-role.kubernetes.io/etcd": "true", "node-role.kubernetes.io/master": "true"}
        | .nodes[$node].annotations += {"etcd.k3s.cattle.io/node-name": ($node + "-standin")}
        | .nodes[$node].annotations |= del(."etcd.k3s.cattle.io/removed-node-name", ."etcd.k3s.cattle.io/remove")
      else . end' || exit 1
  if [ "$role" = server ]; then
    umask 077
    mkdir -p /var/lib/rancher/k3s/server /etc/rancher/k3s
    printf 'K10standin::server:%s\n' "$token" > /var/lib/rancher/k3s/server/node-token
    cat > /etc/rancher/k3s/k3s.yaml <<KUBECONFIG
apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: c3RhbmRpbi1jYQ==
    server: https://127.0.0.1:6443
  name: default
contexts:
- context:
    cluster: default
    user: default
  name: default
current-context: default
kind: Config
preferences: {}
users:
- name: default
  user:
    client-certificate-data: c3RhbmRpbi1jZXJ0
    client-key-data: c3RhbmRpbi1rZXk=
KUBECONFIG
  fi
}

kubectl_get() {
  kind='' name='' raw='' selector=''
  while [ $# -gt 0 ]; do
    case $1 in
      -o|--output) shift ;;
      -o*|--output=*) ;;
      -A|--all-namespaces) ;;
      --raw) raw=$2; shift ;;
      --field-selector) selector=$2; shift ;;
      --field-selector=*) selector=${1#--field-selector=} ;;
      -*) ;;
      *) if [ -z "$kind" ]; then kind=$1; else name=$1; fi ;;
    esac
    shift
  done
  if [ -n "$raw" ]; then
    [ "$raw" = /readyz ] || die "stand-in kubectl: get --raw $raw is not implemented"
    echo ok
    return
  fi
  case $kind in
    nodes|node|no)
      if [ -n "$name" ]; then
        node_exists "$name"
        query --arg n "$name" "$NODE_JSON"' node_json($n; .nodes[$n])'
      else
        query "$NODE_JSON"' {apiVersion: "v1", kind: "List", items: [.nodes | to_entries[] | node_json(.key; .value)]}'
      fi ;;
    pods|pod|po)
      on=${selector#spec.nodeName=}
      query --arg on "$on" '{apiVersion: "v1", kind: "List", items: [.pods[] | select($on == "" or .node == $on)
        | {metadata: {namespace: .ns, name: .name,
                      ownerReferences: [{kind: (if .daemonset then "DaemonSet" else "ReplicaSet" end)}]},
           spec: {nodeName: .node}, status: {phase: "Running"}}]}' ;;
    *) die "stand-in kubectl: get $kind is not implemented" ;;
  esac
}

set_meta() { # field node key value-or-empty-to-delete
  if [ -z "$4" ] && [ "$5" = delete ]; then
    update --arg f "$1" --arg n "$2" --arg k "$3" '.nodes[$n][$f] |= del(.[$k])'
  else
    update --arg f "$1" --arg n "$2" --arg k "$3" --arg v "$4" '.nodes[$n][$f][$k] = $v'
  fi
}

kubectl_meta() { # label|annotate node NAME args...
  verb=$1; shift
  [ "$1" = node ] || [ "$1" = nodes ] || die "stand-in kubectl: $verb supports nodes only"
  name=$2; shift 2
  node_exists "$name"
  if [ "$verb" = label ]; then field=labels; else field=annotations; fi
  for kv in "$@"; do
    case $kv in
      --*) continue ;;
      *=*) set_meta "$field" "$name" "${kv%%=*}" "${kv#*=}" ;;
      *-) set_meta "$field" "$name" "${kv%-}" "" delete ;;
      *) die "stand-in kubectl: cannot read $verb argument $kv" ;;
    esac
    if [ "$field" = annotations ] && [ "$kv" = "etcd.k3s.cattle.io/remove=true" ]; then
      # What k3s's etcd member controller does when asked to remove a member.
      update --arg n "$name" '.nodes[$n].annotations["etcd.k3s.cattle.io/removed-node-name"] = .nodes[$n].annotations["etcd.k3s.cattle.io/node-name"]'
    fi
  done
  echo "node/$name ${verb}d"
}

kubectl_taint() {
  [ "$1" = node ] || [ "$1" = nodes ] || die "stand-in kubectl: taint supports nodes only"
  name=$2; shift 2
  node_exists "$name"
  for t in "$@"; do
    case $t in
      --*) continue ;;
      *:*-) key=${t%%:*}; eff=${t#*:}; eff=${eff%-}
            update --arg n "$name" --arg k "$key" --arg e "$eff" '.nodes[$n].taints |= map(select(.key != $k or .effect != $e))' ;;
      *-) key=${t%-}; update --arg n "$name" --arg k "$key" '.nodes[$n].taints |= map(select(.key != $k))' ;;
      *:*) kv=${t%:*}; eff=${t##*:}; key=${kv%%=*}; val=''
           case $kv in *=*) val=${kv#*=} ;; esac
           update --arg n "$name" --arg k "$key" --arg v "$val" --arg e "$eff" \
             '.nodes[$n].taints = ([.nodes[$n].taints[] | select(.key != $k or .effect != $e)]
                + [{key: $k, effect: $e} + (if $v == "" then {} else {value: $v} end)])' ;;
      *) die "stand-in kubectl: cannot read taint $t" ;;
    esac
  done
  echo "node/$name modified"
}

kubectl_drain() {
  name=$1; shift
  timeout=0
  for a in "$@"; do case $a in --timeout=*) timeout=${a#--timeout=} ;; esac; done
  node_exists "$name"
  update --arg n "$name" '.nodes[$n].unschedulable = true'
  echo "node/$name cordoned"
  query -r --arg n "$name" '.pods[] | select(.node == $n and (.daemonset | not) and (.pdb_blocked | not)) | "evicting pod \(.ns)/\(.name)\npod/\(.name) evicted"'
  update --arg n "$name" '.pods |= map(select(.node != $n or .daemonset or .pdb_blocked))'
  blocked=$(query -r --arg n "$name" '.pods[] | select(.node == $n and .pdb_blocked) | "\(.ns) \(.name)"')
  if [ -n "$blocked" ]; then
    echo "$blocked" | while read -r ns pod; do
      echo "error when evicting pods/\"$pod\" -n \"$ns\" (will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget." >&2
    done
    sleep 1
    echo "error: unable to drain node \"$name\" due to error: global timeout reached: $timeout, continuing command..." >&2
    exit 1
  fi
  echo "node/$name drained"
}

kubectl_cmd() {
  record "kubectl $*"
  api_up
  verb=$1; shift
  case $verb in
    get) kubectl_get "$@" ;;
    cordon) node_exists "$1"; update --arg n "$1" '.nodes[$n].unschedulable = true'; echo "node/$1 cordoned" ;;
    uncordon) node_exists "$1"; update --arg n "$1" '.nodes[$n].unschedulable = false'; echo "node/$1 uncordoned" ;;
    drain) kubectl_drain "$@" ;;
    delete)
      [ "$1" = node ] || [ "$1" = nodes ] || die "stand-in kubectl: delete supports nodes only"
      node_exists "$2"
      update --arg n "$2" 'del(.nodes[$n]) | .pods |= map(select(.node != $n))'
      echo "node \"$2\" deleted" ;;
    label|annotate) kubectl_meta "$verb" "$@" ;;
    taint) kubectl_taint "$@" ;;
    *) die "stand-in kubectl: $verb is not implemented" ;;
  esac
}

etcd_snapshot() {
  record "etcd-snapshot $*"
  sub=${1:-}
  [ $# -gt 0 ] && shift
  name=on-demand retention=5
  while [ $# -gt 0 ]; do
    case $1 in
      --name) name=$2; shift ;;
      --name=*) name=${1#--name=} ;;
      --snapshot-retention|--etcd-snapshot-retention) retention=$2; shift ;;
      --snapshot-retention=*|--etcd-snapshot-retention=*) retention=${1#*=} ;;
    esac
    shift
  done
  case $sub in
    save)
      api_up
      while :; do
        full="$name-$NODE-$(date +%s)"
        [ -e "$DB/snapshots/$full" ] || break
        sleep 1
      done
      mkdir -p "$DB/snapshots"
      query -c '{nodes: (.nodes | keys), reset_epoch}' > "$DB/snapshots/$full"
      size=$(wc -c < "$DB/snapshots/$full" | tr -d ' ')
      update --arg s "$full" --arg node "$NODE" --arg loc "file://$DB/snapshots/$full" --argjson size "$size" \
        --arg created "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
        '.snapshots += [{name: $s, node: $node, location: $loc, size: $size, created: $created}]'
      echo "INFO[0000] Snapshot $full saved." >&2 ;;
    ls|list|l)
      echo "Name Location Size Created"
      query -r '.snapshots[] | "\(.name) \(.location) \(.size) \(.created)"' ;;
    prune)
      doomed=$(query -r --arg p "$name-" --arg node "$NODE" --argjson keep "$retention" '
        [.snapshots[] | select(.node == $node and (.name | startswith($p)))] | sort_by(.created)
        | .[0:(if length > $keep then length - $keep else 0 end)][] | .name')
      for s in $doomed; do
        rm -f "$DB/snapshots/$s"
        update --arg s "$s" '.snapshots |= map(select(.name != $s))'
        echo "INFO[0000] Removing local snapshot $DB/snapshots/$s" >&2
      done ;;
    delete)
      die "stand-in: etcd-snapshot delete is not implemented" ;;
    *) die "k3s etcd-snapshot: unknown subcommand $sub" ;;
  esac
}

cluster_reset() {
  record "server $*"
  path=''
  while [ $# -gt 0 ]; do
    case $1 in
      --cluster-reset-restore-path=*) path=${1#*=} ;;
      --cluster-reset-restore-path) path=$2; shift ;;
    esac
    shift
  done
  [ -f "$UNITS/k3s" ] && die "etcd: k3s is still running on this node (listen tcp :2380: bind: address already in use); stop it before --cluster-reset"
  if [ -n "$path" ]; then [ -f "$path" ] || die "etcd: snapshot path does not exist: $path"; fi
  update --arg p "$path" '.reset_epoch += 1 | .restored_from = $p'
  mkdir -p "$DB"
  query -r '.reset_epoch' > "$DB/reset-epoch"
  echo "INFO[0001] Managed etcd cluster membership has been reset, restart without --cluster-reset flag now. Backup and delete \${datadir}/server/db on each peer etcd server and rejoin the nodes" >&2
}

case ${1:-} in
  --version|-v|version)
    echo "k3s version $VERSION (standin)"
    echo "go version go1.22.8" ;;
  server)
    shift
    case " $* " in
      *" --cluster-reset"*) cluster_reset "$@" ;;
      *) start_service server ;;
    esac ;;
  agent) start_service agent ;;
  kubectl) shift; kubectl_cmd "$@" ;;
  etcd-snapshot) shift; etcd_snapshot "$@" ;;
  __standin-stopped)
    query -e --arg n "$NODE" '.nodes[$n] != null' >/dev/null && update --arg n "$NODE" '.nodes[$n].ready = false'
    exit 0 ;;
  *) record "$*"; die "stand-in k3s: $* is not implemented" ;;
esac
