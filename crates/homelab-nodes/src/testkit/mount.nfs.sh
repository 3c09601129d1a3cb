#!/bin/sh
# Stand-in for mount.nfs on homelab-nodes test hosts, whose kernel has no NFS client. Called
# by mount(8) as `mount.nfs SERVER:PATH DIR [-o OPTIONS]`, it records the call, asks the lab's
# NAS stand-in (HTTP on port 2049 of SERVER) for the directory that holds the export's data,
# fails with mount.nfs's own messages when the server does not answer or the path is not
# exported or does not exist, and bind-mounts that directory at DIR otherwise.
STATE_DIR='@STATE_DIR@'
spec=$1
dir=$2
node=$(sed -n 's/^node-name:[[:space:]]*//p' /etc/rancher/k3s/config.yaml 2>/dev/null | head -n 1 | tr -d '"')
( flock 9; printf '%s\tmount.nfs %s\n' "${node:-unknown}" "$*" >> "$STATE_DIR/calls.log" ) 9>"$STATE_DIR/lock"
server=${spec%%:*}
path=${spec#*:}
reply=$(curl -s --max-time 5 -G --data-urlencode "path=$path" -w '\n%{http_code}' "http://$server:2049/mount")
code=$(printf '%s\n' "$reply" | tail -n 1)
data=$(printf '%s\n' "$reply" | sed '$d')
case $code in
  200) exec mount --bind "$data" "$dir" ;;
  403) echo "mount.nfs: access denied by server while mounting $spec" >&2 ;;
  404) echo "mount.nfs: mounting $spec failed, reason given by server: No such file or directory" >&2 ;;
  *) echo "mount.nfs: Connection refused" >&2 ;;
esac
exit 32
