#!/bin/sh
# Stand-in for the k3s installer (https://get.k3s.io) on homelab-nodes test hosts. Like the
# real one it takes `server`/`agent`, INSTALL_K3S_VERSION and INSTALL_K3S_SKIP_DOWNLOAD,
# downloads the binary (here: the k3s stand-in, from the test's HTTP server), writes the
# unit, the killall and uninstall scripts, and (re)starts the service through systemctl.
set -e
STATE_DIR='@STATE_DIR@'
BASE_URL='@BASE_URL@'
info() { echo "[INFO]  $*"; }
fatal() { echo "[ERROR]  $*" >&2; exit 1; }
case "${1:-}" in
  (-*|"") if [ -z "${K3S_URL:-}" ]; then CMD_K3S=server; else CMD_K3S=agent; fi ;;
  (*) CMD_K3S=$1; shift ;;
esac
if [ "$CMD_K3S" = server ]; then SYSTEM_NAME=k3s; else SYSTEM_NAME=k3s-$CMD_K3S; fi
node=$(sed -n 's/^node-name:[[:space:]]*//p' /etc/rancher/k3s/config.yaml 2>/dev/null | head -n 1 | tr -d '"')
( flock 9; printf '%s\tinstall.sh %s INSTALL_K3S_VERSION=%s INSTALL_K3S_SKIP_DOWNLOAD=%s K3S_TOKEN=%s\n' "${node:-unknown}" \
    "$CMD_K3S" "${INSTALL_K3S_VERSION:-}" "${INSTALL_K3S_SKIP_DOWNLOAD:-}" "${K3S_TOKEN:+set}" >> "$STATE_DIR/calls.log" ) 9>"$STATE_DIR/lock"

mkdir -p /usr/local/bin /etc/systemd/system
if [ "${INSTALL_K3S_SKIP_DOWNLOAD:-}" = true ]; then
  [ -x /usr/local/bin/k3s ] || fatal "INSTALL_K3S_SKIP_DOWNLOAD=true but /usr/local/bin/k3s is missing"
  info "Skipping k3s download and verify"
else
  [ -n "${INSTALL_K3S_VERSION:-}" ] || fatal "this installer stand-in has no release channel: set INSTALL_K3S_VERSION"
  info "Downloading binary $BASE_URL/k3s"
  tmp=$(mktemp)
  curl -sfL "$BASE_URL/k3s" -o "$tmp" || fatal "Download failed"
  sed "s|@VERSION@|$INSTALL_K3S_VERSION|" "$tmp" > /usr/local/bin/k3s.new
  rm -f "$tmp"
  chmod 755 /usr/local/bin/k3s.new
  mv -f /usr/local/bin/k3s.new /usr/local/bin/k3s
  info "Installing k3s to /usr/local/bin/k3s"
fi
for l in kubectl crictl ctr; do [ -e /usr/local/bin/$l ] || ln -s k3s /usr/local/bin/$l; done

cat > /usr/local/bin/k3s-killall.sh <<KILLALL
#!/bin/sh
for u in k3s k3s-agent; do
  if [ -f /etc/systemd/system/\$u.service ]; then systemctl stop \$u; fi
done
KILLALL
chmod 755 /usr/local/bin/k3s-killall.sh

cat > /usr/local/bin/$SYSTEM_NAME-uninstall.sh <<UNINSTALL
#!/bin/sh
node=\$(sed -n 's/^node-name:[[:space:]]*//p' /etc/rancher/k3s/config.yaml 2>/dev/null | head -n 1 | tr -d '"')
( flock 9; printf '%s\t%s\n' "\${node:-unknown}" "$SYSTEM_NAME-uninstall.sh" >> "$STATE_DIR/calls.log" ) 9>"$STATE_DIR/lock"
/usr/local/bin/k3s-killall.sh
systemctl disable $SYSTEM_NAME
rm -f /etc/systemd/system/$SYSTEM_NAME.service /etc/systemd/system/$SYSTEM_NAME.service.env
for l in kubectl crictl ctr; do rm -f /usr/local/bin/\$l; done
rm -rf /etc/rancher/k3s /var/lib/rancher/k3s /var/lib/kubelet
rm -f /usr/local/bin/k3s /usr/local/bin/k3s-killall.sh
rm -f /usr/local/bin/$SYSTEM_NAME-uninstall.sh
UNINSTALL
chmod 755 /usr/local/bin/$SYSTEM_NAME-uninstall.sh

umask 077
env | grep -E '^(K3S|CONTAINERD)_' > /etc/systemd/system/$SYSTEM_NAME.service.env || true
umask 022
cat > /etc/systemd/system/$SYSTEM_NAME.service <<UNIT
[Unit]
Description=Lightweight Kubernetes
After=network-online.target

[Service]
Type=$( [ "$CMD_K3S" = server ] && echo notify || echo exec )
EnvironmentFile=-/etc/systemd/system/$SYSTEM_NAME.service.env
ExecStart=/usr/local/bin/k3s $CMD_K3S
Restart=always

[Install]
WantedBy=multi-user.target
UNIT
info "systemd: Starting $SYSTEM_NAME"
systemctl daemon-reload
systemctl enable $SYSTEM_NAME
systemctl restart $SYSTEM_NAME
