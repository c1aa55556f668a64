#!/bin/sh
# Axle agent bootstrap, served by the hub at /bootstrap.sh. `axle tokens create` prints the
# whole command, which pins the hub's TLS key so this script can only come from the hub:
#   curl -fsSL --pinnedpubkey 'sha256//KEY' -k https://HUB:1530/bootstrap.sh | sudo sh -s -- --token TOKEN --ca-pin sha256:HEX
# It fetches the fleet CA over that channel, checks it against --ca-pin before anything else,
# and from then on trusts only that CA and the hub keys below (written into envoy.yaml).
# Installs the envoy agent in /opt/axle/envoy, writes /etc/axle/envoy.yaml naming every hub,
# enrolls with the join token, and installs and starts axle-envoy.service. Running it again
# changes nothing. Options:
#   --token TOKEN      join token (required unless already enrolled)
#   --hostname NAME    enroll under this name instead of the machine's
#   --root DIR         install under DIR instead of / (for tests and image builds)
#   --no-start         install and enroll, but do not start the service
#   --ca-pin sha256:HEX  the fleet CA's fingerprint (required when the hub speaks https)
set -eu
# Character ranges in the checks below mean ASCII only.
LC_ALL=C
export LC_ALL

# Filled in by the hub when it serves this script.
HUB_URL='@HUB_URL@'
HUB_ADDRS='@HUB_ADDRS@'
AGENT_SHA256='@AGENT_SHA256@'
# Filled in when the agent is built: the machine (uname -m) its executable runs on.
AGENT_MACHINE='@AGENT_MACHINE@'

die() { printf 'axle-bootstrap: %s\n' "$*" >&2; exit 1; }
say() { printf 'axle-bootstrap: %s\n' "$*"; }

# Also filled in by the hub: the Ed25519 keys of every hub (the only ones the envoy will trust),
# and curl's pin of the TLS key of the hub this script came from (empty on a plain-HTTP hub).
HUB_PUBKEYS='@HUB_PUBKEYS@'
HUB_PIN='@HUB_PIN@'
CA_PIN=''

TOKEN=''
HOSTNAME_ARG=''
ROOT=''
START=1
while [ $# -gt 0 ]; do
  case "$1" in
    --token) [ $# -ge 2 ] || die "--token needs a value"; TOKEN=$2; shift 2 ;;
    --hostname) [ $# -ge 2 ] || die "--hostname needs a value"; HOSTNAME_ARG=$2; shift 2 ;;
    --root) [ $# -ge 2 ] || die "--root needs a value"; ROOT=$2; shift 2 ;;
    --no-start) START=0; shift ;;
    --ca-pin) [ $# -ge 2 ] || die "--ca-pin needs a value"; CA_PIN=$2; shift 2 ;;
    *) die "unknown argument (use --token, --hostname, --root, --no-start, --ca-pin)" ;;
  esac
done

# Every value we pass on is checked against a strict pattern first, so a token holding
# "$(...)", quotes or a newline is refused here and never reaches a shell or a file.
only() { # only VALUE PATTERN-OF-ALLOWED-CHARS
  case "$1" in *[!$2]*) return 1 ;; esac
  [ "$(printf '%s' "$1" | wc -l)" -eq 0 ] || return 1
  return 0
}
if [ -n "$TOKEN" ]; then
  only "$TOKEN" 'A-Za-z0-9._-' || die "the token may only hold letters, digits, '.', '_' and '-'; check what you pasted"
fi
if [ -n "$HOSTNAME_ARG" ]; then
  only "$HOSTNAME_ARG" 'A-Za-z0-9._-' || die "the host name may only hold letters, digits, '.', '_' and '-'"
fi
if [ -n "$ROOT" ]; then
  only "$ROOT" 'A-Za-z0-9._/-' || die "--root may only hold letters, digits, '.', '_', '-' and '/'"
  case "$ROOT" in /*) ;; *) die "--root must be an absolute path" ;; esac
fi
case "$HUB_URL" in
  https://*)
    [ -n "$HUB_PIN" ] || die "$HUB_URL is https only through a proxy: the hub itself has no TLS files to pin; set tls in the hub config"
    [ -n "$CA_PIN" ] || die "pass --ca-pin sha256:HEX, the fleet CA's fingerprint: axle tokens create prints the whole command with it"
    CA_PIN=$(printf '%s' "$CA_PIN" | tr 'A-F' 'a-f')
    case "$CA_PIN" in sha256:*) ;; *) die "--ca-pin must look like sha256:HEX (64 hex digits), as axle tokens create prints it" ;; esac
    { only "${CA_PIN#sha256:}" '0-9a-f' && [ "${#CA_PIN}" -eq 71 ]; } || die "--ca-pin must look like sha256:HEX (64 hex digits), as axle tokens create prints it"
    TLS=1 ;;
  *)
    [ -z "$CA_PIN" ] || die "--ca-pin was given but $HUB_URL does not speak TLS: nothing can be checked against it, so nothing is installed"
    say "warning: $HUB_URL is plain HTTP (insecure_transport): the token and everything the agent sends cross the network in clear"
    TLS=0 ;;
esac

MACHINE="$(uname -s) $(uname -m)"
[ "$MACHINE" = "Linux $AGENT_MACHINE" ] || die "this hub serves the agent for Linux $AGENT_MACHINE; this host is $MACHINE"

sha256() { # sha256 FILE -> hex digest
  if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1" | cut -d' ' -f1
  elif command -v shasum >/dev/null 2>&1; then shasum -a 256 "$1" | cut -d' ' -f1
  else die "neither sha256sum nor shasum is installed: the agent download cannot be checked"; fi
}

fetch() { # fetch URL FILE: with TLS, only from a hub whose certificate chains to the checked CA (and, with curl, has the pinned key)
  if [ "$TLS" -eq 0 ]; then
    if command -v curl >/dev/null 2>&1; then curl -fsSL -o "$2" "$1"
    elif command -v wget >/dev/null 2>&1; then wget -q -O "$2" "$1"
    else die "neither curl nor wget is installed"; fi
  elif command -v curl >/dev/null 2>&1; then curl -fsSL --cacert "$TMP/ca.pem" --pinnedpubkey "$HUB_PIN" -o "$2" "$1"
  elif command -v wget >/dev/null 2>&1; then wget -q --ca-certificate="$TMP/ca.pem" -O "$2" "$1"
  else die "neither curl nor wget is installed"; fi
}

ca_fingerprint() { # ca_fingerprint PEM -> sha256 hex over the DER of its certificates, in order (as the hub computes it)
  sed -n '/-----BEGIN CERTIFICATE-----/,/-----END CERTIFICATE-----/p' "$1" | tr -d '\r' | while IFS= read -r l; do
    case "$l" in
      -----BEGIN*) b='' ;;
      -----END*) printf '%s' "$b" | base64 -d || exit 1 ;;
      *) b="$b$l" ;;
    esac
  done > "$TMP/ca.der" || return 1
  [ -s "$TMP/ca.der" ] || return 1
  sha256 "$TMP/ca.der"
}

# The agent gets its own directory: a spoke or hub host keeps its daemons in /opt/axle too, and
# installing or updating the agent replaces this whole directory.
OPT="$ROOT/opt/axle/envoy"
ETC="$ROOT/etc/axle"
STATE="$ROOT/var/lib/axle/envoy"
UNIT_DIR="$ROOT/etc/systemd/system"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
CHANGED=0

# 0. The fleet CA, checked against --ca-pin before anything else is fetched or trusted. The
#    channel is already pinned to the hub's key (curl); the pin is what makes the CA ours.
if [ "$TLS" -eq 1 ]; then
  if command -v curl >/dev/null 2>&1; then
    curl -fsSL -k --pinnedpubkey "$HUB_PIN" -o "$TMP/ca.pem" "$HUB_URL/ca.pem" || die "cannot fetch the CA from $HUB_URL/ca.pem over the pinned channel; nothing installed"
  elif command -v wget >/dev/null 2>&1; then
    wget -q --no-check-certificate -O "$TMP/ca.pem" "$HUB_URL/ca.pem" || die "cannot fetch the CA from $HUB_URL/ca.pem; nothing installed"
  else die "neither curl nor wget is installed"; fi
  GOT=$(ca_fingerprint "$TMP/ca.pem") || die "$HUB_URL/ca.pem is not a PEM certificate; nothing installed"
  [ "sha256:$GOT" = "$CA_PIN" ] || die "the CA served by $HUB_URL is sha256:$GOT, not the $CA_PIN you gave with --ca-pin: nothing installed. Someone may be between this host and the hub; check the command (axle tokens create prints it) and the network"
  say "fleet CA $CA_PIN checked"
fi

# 1. The agent, installed only when the hub serves a different build than the one here.
if [ -f "$OPT/agent.sha256" ] && [ "$(cat "$OPT/agent.sha256")" = "$AGENT_SHA256" ] && [ -x "$OPT/axle-envoy" ]; then
  say "agent already installed at $OPT"
else
  fetch "$HUB_URL/agent/axle-envoy" "$TMP/axle-envoy" || die "cannot download the agent from $HUB_URL/agent/axle-envoy"
  GOT=$(sha256 "$TMP/axle-envoy")
  [ "$GOT" = "$AGENT_SHA256" ] || die "agent download is corrupt or was tampered with (sha256 $GOT, expected $AGENT_SHA256)"
  chmod 755 "$TMP/axle-envoy"
  # It carries its own Node runtime; what it still needs from the host (glibc) shows here.
  VERSION=$("$TMP/axle-envoy" --version </dev/null 2>&1) || die "the agent does not run on this host: $VERSION"
  rm -rf "$OPT.new"
  mkdir -p "$OPT.new"
  mv "$TMP/axle-envoy" "$OPT.new/axle-envoy"
  printf '%s\n' "$AGENT_SHA256" > "$OPT.new/agent.sha256"
  rm -rf "$OPT.old"
  [ -d "$OPT" ] && mv "$OPT" "$OPT.old"
  mv "$OPT.new" "$OPT"
  rm -rf "$OPT.old"
  CHANGED=1
  say "agent $VERSION installed at $OPT"
fi

# 2. The config, written only when it would change.
mkdir -p "$ETC" "$STATE"
chmod 700 "$STATE"
{
  printf '# Written by the Axle bootstrap from %s\n' "$HUB_URL"
  printf 'hub_addrs:\n'
  for a in $HUB_ADDRS; do printf '  - "%s"\n' "$a"; done
  printf 'state_dir: "%s"\n' "$STATE"
  printf 'hub_pubkeys:\n'
  for k in $HUB_PUBKEYS; do printf '  - "%s"\n' "$k"; done
  if [ "$TLS" -eq 1 ]; then printf 'ca_file: "%s"\n' "$ETC/ca.pem"; else printf 'insecure_transport: true\n'; fi
  [ -n "$HOSTNAME_ARG" ] && printf 'hostname: "%s"\n' "$HOSTNAME_ARG"
  true
} > "$TMP/envoy.yaml"
if [ "$TLS" -eq 1 ]; then
  if [ -f "$ETC/ca.pem" ] && cmp -s "$TMP/ca.pem" "$ETC/ca.pem"; then :; else
    cp "$TMP/ca.pem" "$ETC/ca.pem"
    chmod 644 "$ETC/ca.pem"
    CHANGED=1
    say "fleet CA written to $ETC/ca.pem"
  fi
fi
if [ -f "$ETC/envoy.yaml" ] && cmp -s "$TMP/envoy.yaml" "$ETC/envoy.yaml"; then
  say "config $ETC/envoy.yaml unchanged"
else
  cp "$TMP/envoy.yaml" "$ETC/envoy.yaml"
  CHANGED=1
  say "config written to $ETC/envoy.yaml"
fi

# 3. Enrollment, once.
if [ -f "$STATE/assignment.json" ]; then
  say "already enrolled (assignment in $STATE)"
else
  [ -n "$TOKEN" ] || die "not enrolled yet: pass --token TOKEN (create one with: axle tokens create)"
  "$OPT/axle-envoy" enroll --config "$ETC/envoy.yaml" --token "$TOKEN" </dev/null || die "enrollment failed (see the message above)"
fi

# 4. The service: deploy/systemd/axle-envoy.service, put in here when the agent was built.
mkdir -p "$UNIT_DIR"
cat > "$TMP/unit.in" <<'AXLE_UNIT_END'
@AXLE_ENVOY_UNIT@
AXLE_UNIT_END
sed -e "s#/opt/axle/bin/axle-envoy#$OPT/axle-envoy#" -e "s#/etc/axle/envoy.yaml#$ETC/envoy.yaml#" \
  "$TMP/unit.in" > "$TMP/axle-envoy.service"
if [ -f "$UNIT_DIR/axle-envoy.service" ] && cmp -s "$TMP/axle-envoy.service" "$UNIT_DIR/axle-envoy.service"; then
  say "unit $UNIT_DIR/axle-envoy.service unchanged"
else
  cp "$TMP/axle-envoy.service" "$UNIT_DIR/axle-envoy.service"
  CHANGED=1
  say "unit installed at $UNIT_DIR/axle-envoy.service"
fi
[ "$START" -eq 1 ] || { say "not starting the service (--no-start)"; exit 0; }
if ! command -v systemctl >/dev/null 2>&1; then
  printf 'axle-bootstrap: %s\n' "systemctl not found: the agent is installed and enrolled, but nothing started it." \
    "start it with your init system: $OPT/axle-envoy --config $ETC/envoy.yaml" >&2
  exit 3
fi
if [ "$CHANGED" -eq 1 ]; then
  systemctl daemon-reload </dev/null
  # A new agent build or config takes effect now; on a first install this is a plain start.
  systemctl enable axle-envoy.service </dev/null
  systemctl restart axle-envoy.service </dev/null
else
  systemctl enable --now axle-envoy.service </dev/null
fi
say "axle-envoy.service is running"
