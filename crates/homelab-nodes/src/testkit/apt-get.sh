#!/bin/sh
# Stand-in for apt-get on a GPU test host, which has no package archive: records the call,
# and installs nvidia-container-toolkit (its runtime's command) only when NVIDIA's apt source
# is written and names a keyring that exists, as apt would need.
STATE_DIR='@STATE_DIR@'
node=$(sed -n 's/^node-name:[[:space:]]*//p' /etc/rancher/k3s/config.yaml 2>/dev/null | head -n 1 | tr -d '"')
( flock 9; printf '%s\tapt-get %s\n' "${node:-unknown}" "$*" >> "$STATE_DIR/calls.log" ) 9>"$STATE_DIR/lock"
src=/etc/apt/sources.list.d/nvidia-container-toolkit.list
case " $* " in
  *" install "*nvidia-container-toolkit*)
    key=$(sed -n 's/.*signed-by=\([^] ]*\).*/\1/p' "$src" 2>/dev/null | head -n 1)
    if [ -z "$key" ] || [ ! -s "$key" ]; then
      echo "E: Unable to locate package nvidia-container-toolkit" >&2
      exit 100
    fi
    printf '#!/bin/sh\nexit 0\n' > /usr/bin/nvidia-container-runtime
    chmod 755 /usr/bin/nvidia-container-runtime
    ;;
esac
exit 0
