#!/bin/sh
# Stand-in for systemctl on homelab-nodes test hosts, where no systemd runs: records the
# call, keeps each unit's active state in a file, and starts k3s units by running the k3s
# (stand-in) binary's start-up once.
STATE_DIR='@STATE_DIR@'
UNITS=/var/lib/standin-systemd
node=$(sed -n 's/^node-name:[[:space:]]*//p' /etc/rancher/k3s/config.yaml 2>/dev/null | head -n 1 | tr -d '"')
( flock 9; printf '%s\tsystemctl %s\n' "${node:-unknown}" "$*" >> "$STATE_DIR/calls.log" ) 9>"$STATE_DIR/lock"
cmd=${1:-}
[ $# -gt 0 ] && shift
while [ $# -gt 0 ]; do case $1 in -*) shift ;; *) break ;; esac; done
status=0
for u in "$@"; do
  unit=${u%.service}
  case $cmd in
    start|restart)
      if [ ! -f "/etc/systemd/system/$unit.service" ]; then
        echo "Failed to $cmd $unit.service: Unit $unit.service not found." >&2; status=5; continue
      fi
      case $unit in k3s) role=server ;; k3s-agent) role=agent ;; *) continue ;; esac
      if /usr/local/bin/k3s "$role"; then
        mkdir -p "$UNITS"; touch "$UNITS/$unit"
      else
        rm -f "$UNITS/$unit"
        echo "Job for $unit.service failed because the control process exited with error code." >&2; status=1
      fi ;;
    stop)
      rm -f "$UNITS/$unit"
      case $unit in k3s|k3s-agent) [ -x /usr/local/bin/k3s ] && /usr/local/bin/k3s __standin-stopped ;; esac ;;
    is-active)
      if [ -f "$UNITS/$unit" ]; then echo active; else echo inactive; status=3; fi ;;
    *) ;;
  esac
done
exit $status
