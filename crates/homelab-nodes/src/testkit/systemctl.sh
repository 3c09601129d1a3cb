#!/bin/sh
# Stand-in for systemctl on homelab-nodes test hosts, where no systemd runs: records the
# call, keeps each unit's active state in a file, starts k3s units by running the k3s
# (stand-in) binary's start-up once, mounts and unmounts mount units as systemd would (with
# mount(8) and the unit's What=, Where=, Type= and Options=), and enables units by linking
# them into the .wants directories their WantedBy= names.
STATE_DIR='@STATE_DIR@'
UNITS=/var/lib/standin-systemd
node=$(sed -n 's/^node-name:[[:space:]]*//p' /etc/rancher/k3s/config.yaml 2>/dev/null | head -n 1 | tr -d '"')
( flock 9; printf '%s\tsystemctl %s\n' "${node:-unknown}" "$*" >> "$STATE_DIR/calls.log" ) 9>"$STATE_DIR/lock"
cmd=${1:-}
[ $# -gt 0 ] && shift
while [ $# -gt 0 ]; do case $1 in -*) shift ;; *) break ;; esac; done
status=0
mount_key() { sed -n "s/^$1=//p" "/etc/systemd/system/$2" | head -n 1; }
mounted() {
  where=$(mount_key Where "$1")
  awk -v d="$where" '$5 == d { found = 1 } END { exit !found }' /proc/self/mountinfo
}
for u in "$@"; do
  case $u in
    *.mount)
      f=/etc/systemd/system/$u
      case $cmd in
        start|restart)
          [ -f "$f" ] || { echo "Failed to $cmd $u: Unit $u not found." >&2; status=5; continue; }
          where=$(mount_key Where "$u")
          if [ "$cmd" = restart ] && mounted "$u"; then umount "$where" || { status=1; continue; }; fi
          if ! mounted "$u"; then
            mkdir -p "$where"
            if ! mount -t "$(mount_key Type "$u")" -o "$(mount_key Options "$u")" "$(mount_key What "$u")" "$where" 2>/dev/null; then
              echo "Job for $u failed. See \"systemctl status $u\" and \"journalctl -xeu $u\" for details." >&2; status=1
            fi
          fi ;;
        stop) if mounted "$u"; then umount "$(mount_key Where "$u")" || status=1; fi ;;
        is-active) if [ -f "$f" ] && mounted "$u"; then echo active; else echo inactive; status=3; fi ;;
        enable)
          [ -f "$f" ] || { echo "Failed to enable unit: Unit file $u does not exist." >&2; status=1; continue; }
          for t in $(sed -n 's/^WantedBy=//p' "$f"); do
            mkdir -p "/etc/systemd/system/$t.wants"
            if [ ! -L "/etc/systemd/system/$t.wants/$u" ]; then
              ln -s "$f" "/etc/systemd/system/$t.wants/$u"
              echo "Created symlink /etc/systemd/system/$t.wants/$u -> $f." >&2
            fi
          done ;;
        is-enabled)
          if ls /etc/systemd/system/*.wants/"$u" >/dev/null 2>&1; then echo enabled
          elif [ -f "$f" ]; then echo disabled; status=1
          else echo "Failed to get unit file state for $u: No such file or directory" >&2; status=1; fi ;;
        *) ;;
      esac
      continue ;;
  esac
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
