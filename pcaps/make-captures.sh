#!/usr/bin/env bash
# make-captures.sh - regenerate mxwatch's corpus of real SMTP captures.
#
# Run as root on Debian 12, from anywhere:   bash pcaps/make-captures.sh [SCENARIO...]
#
# Every packet is made by real software (Postfix, swaks, openssl, gnutls-cli, curl,
# dnsmasq, dig, python3 http.server; a few small python3 helpers in
# pcaps/tools/ where no packaged client makes the wanted bytes) and captured
# by tcpdump/dumpcap.  All traffic stays inside network namespaces this
# script creates (loopback of namespace "mxwpcap", plus a veth "VLAN trunk"
# between three namespaces).  Nothing looks up real DNS or talks to the
# outside: the namespaces have no route out, Postfix runs with DNS disabled
# and explicit next hops, and every client is given an IP address.
#
# The .pcap/.pcapng files, the server certificates (pcaps/certs/) and
# pcaps/certs/fingerprints.txt are (re)written in place; certificates are
# new on every run, so tests must derive expected hashes from the committed
# files.  See pcaps/README.md for what each capture holds.
#
# Scenarios (arguments; none = all of them, the default):
#   base                          the original corpus: the test CA, certs/mx and
#                                 certs/www, and every capture made with them.
#                                 It can only be rebuilt as a whole, because the
#                                 CA's private key is not kept.
#   smtp-starttls-expired-cert    STARTTLS, TLS 1.2, expired certificate
#   smtp-starttls-wrongname-cert  STARTTLS, TLS 1.2, certificate for another name
#   ca2                           both of the above
#   smtp-hostile-ehlo             tools/smtp-raw-client.py hostile -> the SASL
#                                 Postfix (127.0.0.5): control bytes and escapes
#                                 in EHLO/HELO and RCPT, AUTH PLAIN before TLS
#   smtp-exim-early-pipe          Exim 4.96 client -> Exim 4.96 server with
#                                 PIPE_CONNECT (early pipelining) and CHUNKING:
#                                 smtp-exim-early-pipe.pcap (plaintext, two
#                                 deliveries, the second pipelined before the
#                                 greeting) and smtp-exim-early-pipe-tls.pcap
#                                 (the same with STARTTLS, TLS 1.3) with the key
#                                 log GnuTLS wrote in the client Exim
#                                 (SSLKEYLOGFILE): smtp-exim-early-pipe-tls.keys.
#                                 Exim is not installed (it conflicts with
#                                 postfix): its Debian packages are unpacked and
#                                 run from the work dir.
#   smtp-opensmtpd                OpenSMTPD 6.8 (unpacked likewise) as client:
#                                 smtp-opensmtpd-fallback.pcap (to an OpenSMTPD
#                                 server whose STARTTLS fails; the client
#                                 downgrades to plaintext) and
#                                 smtp-opensmtpd-to-postfix.pcap (STARTTLS, TLS
#                                 1.3, to Postfix)
#   smtp-tls13-keylog             STARTTLS, TLS 1.3, each capture with the NSS key
#                                 log its client wrote (smtp-tls13-NAME.keys):
#                                 aes128 (openssl s_client), aes256 (python3
#                                 smtplib), chacha20 (gnutls-cli), hrr (s_client,
#                                 HelloRetryRequest), postfix (Postfix smtp client
#                                 through the shim sensor/shim/keylog_shim.c,
#                                 handshake secrets only). Its own test CA
#                                 ("keylog-ca", certs/ca3.example.test.pem), made
#                                 afresh on every run.
# The two bad-certificate scenarios share a second test CA ("expired-ca", certs/ca2.example.test.pem)
# that is made afresh on every run, so asking for either one rebuilds both.
#   bash pcaps/make-captures.sh --list                          names only
#   bash pcaps/make-captures.sh smtp-starttls-expired-cert smtp-starttls-wrongname-cert
#   bash pcaps/make-captures.sh smtp-hostile-ehlo
#
# Options (environment):  KEEP_WORK=1   keep the temp dir (configs, logs)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="$HERE"
TOOLS="$HERE/tools"
PY=/usr/bin/python3

NS=mxwpcap          # main namespace: Postfix instances, clients, DNS, web
NS_C=mxwpcap-cli    # VLAN client namespace
NS_SW=mxwpcap-sw    # VLAN "switch" namespace (trunk is captured here)
NETNS_ETC=/etc/netns/$NS

CLIENT=127.0.0.10   # source address of every client on loopback
CLIENT6=fd6d:7877::10
PLAIN=127.0.0.2     # Postfix, no STARTTLS            smtp.example.test
TLSMX=127.0.0.3     # Postfix, STARTTLS               mx.example.test
TLSMX6=fd6d:7877::3
BROKEN=127.0.0.4    # Postfix, STARTTLS -> 454        mx-broken.example.test
AUTHMX=127.0.0.5    # Postfix, SASL AUTH before TLS   auth.example.test
RELAYA=127.0.0.6    # Postfix, relays to 127.0.0.3    relay.sender.test
PROXY=127.0.0.7     # STARTTLS-stripping proxy -> 127.0.0.3
NOCERT=127.0.0.8    # Postfix, STARTTLS offered, no certificate: handshake fails
EXPIRED=127.0.0.11  # Postfix, STARTTLS, expired certificate (CA2)   mx.example.test
WRONGNAME=127.0.0.12 # Postfix, STARTTLS, cert for wrong.example.org (CA2)  mx.example.test
WEB=127.0.0.9       # python http.server :80, openssl s_server :443
DNS=127.0.0.53      # dnsmasq authoritative for example.test
VCLIENT=198.51.100.10   # VLAN client (TEST-NET-2, only inside our namespaces)
VSERVER=198.51.100.25   # VLAN server = the "plain" Postfix instance

log() { printf '\n=== %s\n' "$*"; }
die() { printf 'make-captures: error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- scenarios
ALL_SCENARIOS=(base smtp-starttls-expired-cert smtp-starttls-wrongname-cert smtp-hostile-ehlo
               smtp-exim-early-pipe smtp-opensmtpd smtp-tls13-keylog)
CA2_SCENARIOS=(smtp-starttls-expired-cert smtp-starttls-wrongname-cert)
SELECTED=()
want() { local x; for x in "${SELECTED[@]}"; do [ "$x" = "$1" ] && return 0; done; return 1; }
want_ca2() { local x; for x in "${CA2_SCENARIOS[@]}"; do want "$x" && return 0; done; return 1; }

select_scenarios() {   # arguments -> SELECTED (in ALL_SCENARIOS order)
    local a x picked=()
    [ $# -eq 0 ] && set -- all
    for a in "$@"; do
        case $a in
            -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
            -l|--list) printf '%s\n' "${ALL_SCENARIOS[@]}" ca2 all; exit 0 ;;
            all) picked+=("${ALL_SCENARIOS[@]}") ;;
            ca2) picked+=("${CA2_SCENARIOS[@]}") ;;
            base) picked+=(base) ;;
            *.pcap) select_scenarios_one "${a%.pcap}" ;;
            *) select_scenarios_one "$a" ;;
        esac
    done
    # the CA2 scenarios share a CA that is made afresh: always rebuild them together
    for x in "${picked[@]}"; do
        case " ${CA2_SCENARIOS[*]} " in *" $x "*) picked+=("${CA2_SCENARIOS[@]}"); break ;; esac
    done
    for x in "${ALL_SCENARIOS[@]}"; do
        case " ${picked[*]} " in *" $x "*) SELECTED+=("$x") ;; esac
    done
}
select_scenarios_one() {   # a single capture name (helper of select_scenarios)
    case " ${ALL_SCENARIOS[*]} " in
        *" $1 "*) picked+=("$1") ;;
        *) die "unknown scenario '$1' (known: ${ALL_SCENARIOS[*]} ca2 all; the other captures are part of 'base')" ;;
    esac
}

# ---------------------------------------------------------------- packages
install_packages() {
    # libgnutls-dane0, libidn12: what the unpacked Exim links to; gnutls-bin,
    # make, gcc, libssl-dev: gnutls-cli and the key-log shim (smtp-tls13-keylog)
    local pkgs=(postfix sasl2-bin libsasl2-modules swaks tcpdump tshark
                wireshark-common openssl python3 dnsmasq-base bind9-dnsutils
                iproute2 curl ethtool procps libgnutls-dane0 libidn12 util-linux
                gnutls-bin make gcc libc6-dev libssl-dev)
    local missing=() p
    for p in "${pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing: ${missing[*]}"
    echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections
    echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" \
        || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"; }
}

# ---------------------------------------------------------------- cleanup
WORK=""
CAP_PID=""
BG_PIDS=()
PF_DIRS=()

ns_exists() { ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$1"; }

kill_ns_procs() {   # processes inside one of OUR namespaces (started by this script)
    local ns=$1 pids
    ns_exists "$ns" || return 0
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    [ -n "$pids" ] || return 0
    kill $pids 2>/dev/null || true
    sleep 1
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    [ -n "$pids" ] && kill -9 $pids 2>/dev/null || true
}

teardown_net() {
    local ns
    for ns in "$NS_C" "$NS_SW" "$NS"; do
        kill_ns_procs "$ns"
        ns_exists "$ns" && ip netns del "$ns" 2>/dev/null || true
    done
    rm -rf "$NETNS_ETC"
}

cleanup() {
    local rc=$? p d
    set +e
    trap - EXIT INT TERM
    [ -n "$CAP_PID" ] && kill -INT "$CAP_PID" 2>/dev/null
    for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for d in "${PF_DIRS[@]}"; do
        ns_exists "$NS" && ip netns exec "$NS" postfix -c "$d/etc" stop >/dev/null 2>&1
    done
    teardown_net
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then
        if [ "${KEEP_WORK:-0}" = 1 ]; then echo "work dir kept: $WORK"; else rm -rf "$WORK"; fi
    fi
    [ $rc -ne 0 ] && echo "make-captures: FAILED (rc=$rc)" >&2
    exit $rc
}

# ---------------------------------------------------------------- network
nsx() { ip netns exec "$NS" "$@"; }

setup_net() {
    log "network namespaces"
    ip netns add "$NS"
    ip -n "$NS" link set lo up
    local a
    for a in $PLAIN $TLSMX $BROKEN $AUTHMX $RELAYA $PROXY $NOCERT $EXPIRED $WRONGNAME $WEB $DNS $CLIENT; do
        ip -n "$NS" addr add "$a/32" dev lo
    done
    ip -n "$NS" -6 addr add "$TLSMX6/128" dev lo nodad
    ip -n "$NS" -6 addr add "$CLIENT6/128" dev lo nodad

    # name service inside the namespace: local hosts file, a resolver that
    # points at the namespace's own loopback (nothing listens on :53 there)
    mkdir -p "$NETNS_ETC"
    cat > "$NETNS_ETC/hosts" <<EOF
127.0.0.1	localhost
::1	localhost
$PLAIN	smtp.example.test
$TLSMX	mx.example.test
$TLSMX6	mx.example.test
$BROKEN	mx-broken.example.test
$AUTHMX	auth.example.test
$RELAYA	relay.sender.test
$PROXY	mx-via-proxy.example.test
$NOCERT	mx-nocert.example.test
$EXPIRED	mx-expired.example.test
$WRONGNAME	mx-wrongname.example.test
$WEB	www.example.test
$DNS	ns.example.test
$CLIENT	client.sender.test
$CLIENT6	client.sender.test
$VSERVER	smtp-vlan.example.test
EOF
    echo "nameserver 127.0.0.1" > "$NETNS_ETC/resolv.conf"
}

setup_vlan_lab() {
    log "VLAN lab namespaces"
    local a
    # VLAN lab: client ns --veth-- switch ns (trunk veth pair) --veth-- main ns
    ip netns add "$NS_C"
    ip netns add "$NS_SW"
    for a in "$NS_C" "$NS_SW"; do
        ip netns exec "$a" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
        ip netns exec "$a" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
        ip -n "$a" link set lo up
    done
    ip link add c0 netns "$NS_C" type veth peer name sw-c netns "$NS_SW"
    ip link add s0 netns "$NS" type veth peer name sw-s netns "$NS_SW"
    ip -n "$NS_SW" link add tr-a type veth peer name tr-b
    nsx sysctl -qw net.ipv6.conf.s0.disable_ipv6=1
    ip -n "$NS_C" addr add "$VCLIENT/24" dev c0
    ip -n "$NS" addr add "$VSERVER/24" dev s0
    # software checksums and no segmentation offload: frames on the wire are
    # what a real NIC would send (<= MTU, correct checksums), and the
    # user-space VLAN switch can forward them unchanged
    ip netns exec "$NS_C" ethtool -K c0 tx off tso off gso off gro off >/dev/null 2>&1 || true
    nsx ethtool -K s0 tx off tso off gso off gro off >/dev/null 2>&1 || true
    for a in sw-c sw-s tr-a tr-b; do
        ip netns exec "$NS_SW" ethtool -K "$a" tx off tso off gso off gro off >/dev/null 2>&1 || true
    done
    ip -n "$NS_SW" link set tr-a mtu 1600
    ip -n "$NS_SW" link set tr-b mtu 1600
    for a in sw-c sw-s tr-a tr-b; do ip -n "$NS_SW" link set "$a" promisc on up; done
    ip -n "$NS_C" link set c0 up
    ip -n "$NS" link set s0 up
}

# ---------------------------------------------------------------- TLS material
make_certs() {
    log "certificates (self-signed CA, 10 years)"
    local t="$WORK/tls"
    mkdir -p "$t"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -sha256 \
        -keyout "$t/ca.key" -out "$t/ca.pem" \
        -subj "/O=mxwatch test/CN=mxwatch Test CA example.test" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    local name san
    for name in mx www; do
        case $name in
            mx)  san="DNS:mx.example.test,DNS:mail.example.test" ;;
            www) san="DNS:www.example.test" ;;
        esac
        openssl req -newkey rsa:2048 -nodes -sha256 -keyout "$t/$name.key" -out "$t/$name.csr" \
            -subj "/O=mxwatch test/CN=$name.example.test" 2>/dev/null
        printf 'subjectAltName=%s\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n' "$san" > "$t/$name.ext"
        openssl x509 -req -in "$t/$name.csr" -CA "$t/ca.pem" -CAkey "$t/ca.key" \
            -set_serial "0x$(openssl rand -hex 8)" -days 3650 -sha256 \
            -extfile "$t/$name.ext" -out "$t/$name.pem" 2>/dev/null
    done
    # an unrelated key: paired with mx.pem it makes Postfix answer 454
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$t/wrong.key" 2>/dev/null
    chmod 644 "$t"/*.pem
    chmod 600 "$t"/*.key

    mkdir -p "$OUT/certs"
    cp "$t/ca.pem"  "$OUT/certs/ca.example.test.pem"
    cp "$t/mx.pem"  "$OUT/certs/mx.example.test.pem"
    cp "$t/www.pem" "$OUT/certs/www.example.test.pem"
    {
        echo "# generated by make-captures.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ)"
        echo "# file  cert_sha256  spki_sha256  (lowercase hex, DER)"
        local f
        for f in ca.example.test mx.example.test www.example.test; do
            printf '%s %s %s\n' "$f.pem" \
                "$(openssl x509 -in "$OUT/certs/$f.pem" -outform DER | sha256sum | cut -d' ' -f1)" \
                "$(openssl x509 -in "$OUT/certs/$f.pem" -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1)"
        done
    } > "$OUT/certs/fingerprints.txt"
}

# fingerprint_line FILE: "FILE cert_sha256 spki_sha256" for certs/FILE
fingerprint_line() {
    printf '%s %s %s\n' "$1" \
        "$(openssl x509 -in "$OUT/certs/$1" -outform DER | sha256sum | cut -d' ' -f1)" \
        "$(openssl x509 -in "$OUT/certs/$1" -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1)"
}

# A second test CA ("expired-ca") for the expired / wrong-name captures.  The
# first CA's private key is not kept, so it cannot sign anything new; these
# certificates never touch certs/ca.example.test.pem, certs/mx..., certs/www...
# `openssl ca` because OpenSSL 3.0 `x509 -req` cannot set notBefore.
#   ca2.example.test.pem        CA, 2019-01-01 .. generation + 10 years
#   mx-expired.example.test.pem mx.example.test, 2020-01-01 .. 2021-01-01 (expired)
#   wrongname.example.org.pem   wrong.example.org, generation + 10 years
make_certs_ca2() {
    log "certificates (second test CA 'expired-ca': expired leaf, wrong-name leaf)"
    local t="$WORK/tls2"
    mkdir -p "$t/newcerts"
    : > "$t/index.txt"
    local ca_end; ca_end=$(date -u -d '+10 years' +%Y%m%d%H%M%SZ)
    cat > "$t/ca.cnf" <<EOF
[ ca ]
default_ca = expired_ca
[ expired_ca ]
dir = $t
database = \$dir/index.txt
new_certs_dir = \$dir/newcerts
rand_serial = yes
default_md = sha256
policy = policy_any
unique_subject = no
email_in_dn = no
preserve = yes
[ policy_any ]
organizationName = supplied
commonName = supplied
[ v3_ca ]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
EOF
    openssl req -new -newkey rsa:2048 -nodes -sha256 -keyout "$t/ca.key" -out "$t/ca.csr" \
        -subj "/O=mxwatch test/CN=mxwatch Test CA2 (expired-ca) example.test" 2>/dev/null
    openssl ca -batch -notext -config "$t/ca.cnf" -selfsign -keyfile "$t/ca.key" \
        -in "$t/ca.csr" -startdate 20190101000000Z -enddate "$ca_end" \
        -extensions v3_ca -out "$t/ca.pem" 2>"$t/ca.log" || { cat "$t/ca.log" >&2; die "CA2"; }
    local name cn dates
    for name in expired wrongname; do
        case $name in
            expired)   cn=mx.example.test;   dates=(-startdate 20200101000000Z -enddate 20210101000000Z) ;;
            wrongname) cn=wrong.example.org; dates=(-days 3650) ;;
        esac
        openssl req -new -newkey rsa:2048 -nodes -sha256 -keyout "$t/$name.key" -out "$t/$name.csr" \
            -subj "/O=mxwatch test/CN=$cn" 2>/dev/null
        printf 'subjectAltName=DNS:%s\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n' "$cn" > "$t/$name.ext"
        openssl ca -batch -notext -config "$t/ca.cnf" -cert "$t/ca.pem" -keyfile "$t/ca.key" \
            -in "$t/$name.csr" "${dates[@]}" -extfile "$t/$name.ext" -out "$t/$name.pem" \
            2>"$t/$name.log" || { cat "$t/$name.log" >&2; die "certificate $name"; }
    done
    chmod 644 "$t"/*.pem
    chmod 600 "$t"/*.key

    mkdir -p "$OUT/certs"
    cp "$t/ca.pem"        "$OUT/certs/ca2.example.test.pem"
    cp "$t/expired.pem"   "$OUT/certs/mx-expired.example.test.pem"
    cp "$t/wrongname.pem" "$OUT/certs/wrongname.example.org.pem"
    # replace (or add) only these three lines of fingerprints.txt
    local fp="$OUT/certs/fingerprints.txt" f
    [ -f "$fp" ] || printf '# file  cert_sha256  spki_sha256  (lowercase hex, DER)\n' > "$fp"
    grep -Ev '^(ca2\.example\.test|mx-expired\.example\.test|wrongname\.example\.org)\.pem ' "$fp" > "$t/fp.txt" || true
    for f in ca2.example.test.pem mx-expired.example.test.pem wrongname.example.org.pem; do
        fingerprint_line "$f" >> "$t/fp.txt"
    done
    cat "$t/fp.txt" > "$fp"
}

# ---------------------------------------------------------------- Postfix
# Postfix instances: pcaps/tools/postfix.sh (shared with the tests)
. "$TOOLS/postfix.sh"

# pf_new NAME HOSTNAME INET_INTERFACES  (extra main.cf lines on stdin)
pf_new() {
    local d="$WORK/pf-$1"
    pf_instance "$d" "$1" "$2" example.test "$3" all \
        "127.0.0.0/8, [::1]/128, [fd6d:7877::]/64, 198.51.100.0/24"
    PF_DIRS+=("$d")
}

pf_start() {
    local d="$WORK/pf-$1" i
    if ! nsx postfix -c "$d/etc" start > "$d/start.log" 2>&1; then
        cat "$d/start.log" "$d/maillog" 2>/dev/null >&2
        die "Postfix instance $1 did not start"
    fi
    shift
    for i in $(seq 50); do
        local ok=1 a
        for a in "$@"; do nsx ss -Hltn "sport = :25" | grep -q "$a:25" || ok=0; done
        [ $ok = 1 ] && return 0
        sleep 0.2
    done
    cat "$d/maillog" >&2
    die "Postfix instance did not listen on $*"
}

setup_postfix() {
    log "Postfix instances"
    local t="$WORK/tls"

    pf_new plain smtp.example.test "$PLAIN, $VSERVER" <<EOF
smtpd_tls_security_level = none
EOF
    # a second listener for the "SMTP on a non-standard port" capture
    echo "$PLAIN:2525 inet n - n - - smtpd" >> "$WORK/pf-plain/etc/master.cf"

    pf_new tls mx.example.test "$TLSMX, [$TLSMX6]" <<EOF
smtpd_tls_security_level = may
smtpd_tls_chain_files = $t/mx.key, $t/mx.pem, $t/ca.pem
smtpd_tls_loglevel = 1
smtpd_tls_received_header = yes
EOF

    pf_new broken mx-broken.example.test "$BROKEN" <<EOF
# certificate and a key that does not belong to it: STARTTLS is advertised,
# but the TLS engine cannot start, so smtpd answers
# "454 4.7.0 TLS not available due to local problem"
smtpd_tls_security_level = may
smtpd_tls_cert_file = $t/mx.pem
smtpd_tls_key_file = $t/wrong.key
EOF

    pf_new nocert mx-nocert.example.test "$NOCERT" <<EOF
# STARTTLS advertised, no certificate loadable: smtpd says 220 and the
# handshake then fails with a handshake_failure alert (no shared cipher)
smtpd_tls_security_level = may
smtpd_tls_chain_files = $t/does-not-exist.pem
EOF

    pf_new_auth "$t/mx.key, $t/mx.pem, $t/ca.pem"

    pf_new relay relay.sender.test "$RELAYA" <<EOF
# MTA A: relays everything to MTA B (the "tls" instance) with opportunistic TLS
relay_domains =
default_transport = smtp
relayhost = [$TLSMX]:25
smtp_bind_address = $RELAYA
smtp_tls_security_level = may
smtp_tls_servername = mx.example.test
smtp_tls_CAfile = $t/ca.pem
smtp_tls_loglevel = 1
smtp_connection_cache_on_demand = no
EOF

    chmod 755 "$WORK"
    pf_start plain "$PLAIN" "$VSERVER"
    pf_start tls "$TLSMX" "\[$TLSMX6\]"
    pf_start broken "$BROKEN"
    pf_start nocert "$NOCERT"
    pf_start auth "$AUTHMX"
    pf_start relay "$RELAYA"
}

# pf_new_auth CHAIN_FILES: the "auth" instance (auth.example.test, $AUTHMX).
# SASL (Cyrus, sasldb) for AUTH PLAIN/LOGIN; AUTH allowed before TLS.  The
# one test user is alice@example.test / Secret-Passw0rd.
pf_new_auth() {
    local chain=$1
    # Debian's Postfix reads the Cyrus config from $config_directory/sasl/.
    local sd="$WORK/pf-auth/etc/sasl" sdb="$WORK/pf-auth/sasldb2"
    [ -n "$WORK" ] || die "internal: WORK unset"
    mkdir -p "$sd"
    cat > "$sd/smtpd.conf" <<EOF
pwcheck_method: auxprop
auxprop_plugin: sasldb
mech_list: PLAIN LOGIN
sasldb_path: $sdb
EOF
    echo 'Secret-Passw0rd' | saslpasswd2 -p -c -f "$sdb" -u example.test alice
    chown postfix "$sdb"
    chmod 644 "$sd/smtpd.conf"
    pf_new auth auth.example.test "$AUTHMX" <<EOF
smtpd_tls_security_level = may
smtpd_tls_chain_files = $chain
smtpd_tls_auth_only = no
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = cyrus
smtpd_sasl_path = smtpd
cyrus_sasl_config_path = $sd
smtpd_sasl_local_domain = example.test
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination
EOF
}

# The "auth" instance on its own, for smtp-hostile-ehlo without `base`.  The
# first CA's keys are not kept, so it gets a throwaway self-signed certificate
# (in $WORK only, never copied to pcaps/).  STARTTLS is still advertised, as
# in base; the hostile client never uses it, so no certificate is on the wire.
setup_postfix_auth_alone() {
    log "Postfix instance auth (SASL, AUTH before TLS), on its own"
    local t="$WORK/tls-auth"
    mkdir -p "$t"
    openssl req -x509 -newkey rsa:2048 -nodes -days 1 -sha256 \
        -keyout "$t/auth.key" -out "$t/auth.pem" \
        -subj "/O=mxwatch test/CN=auth.example.test" \
        -addext "subjectAltName=DNS:auth.example.test" 2>/dev/null
    chmod 644 "$t/auth.pem"
    chmod 600 "$t/auth.key"
    pf_new_auth "$t/auth.key, $t/auth.pem"
    chmod 755 "$WORK"
    pf_start auth "$AUTHMX"
}

setup_postfix_ca2() {   # the two servers with CA2 certificates
    log "Postfix instances (CA2: expired, wrong name)"
    local t="$WORK/tls2"
    # both answer as mx.example.test: the server is the right one, only its
    # certificate is bad (expired / made out for another name)
    pf_new expired mx.example.test "$EXPIRED" <<EOF
# Postfix does not check its own certificate's dates: it serves it anyway
smtpd_tls_security_level = may
smtpd_tls_chain_files = $t/expired.key, $t/expired.pem, $t/ca.pem
smtpd_tls_loglevel = 1
EOF
    pf_new wrongname mx.example.test "$WRONGNAME" <<EOF
smtpd_tls_security_level = may
smtpd_tls_chain_files = $t/wrongname.key, $t/wrongname.pem, $t/ca.pem
smtpd_tls_loglevel = 1
EOF
    chmod 755 "$WORK"
    pf_start expired "$EXPIRED"
    pf_start wrongname "$WRONGNAME"
}

# ---------------------------------------------------------------- Exim
# Exim conflicts with the postfix package, so it is not installed: its
# Debian packages are unpacked into the work dir and run in a mount
# namespace where /usr/sbin is the unpacked one (Exim re-executes itself
# from its compiled-in path) and /etc/passwd names its user (Debian-exim,
# here uid nobody). Binding port 25 as that user needs
# ip_unprivileged_port_start=0 in the capture namespace, since Exim gives
# up root when given a configuration with -C.
EXIM_MX=127.0.0.20      # Exim server: PIPE_CONNECT, CHUNKING, STARTTLS   mx.example.test
EXIM_CLIENT=127.0.0.21  # Exim client                                     relay.sender.test

setup_exim() {
    log "Exim (unpacked from Debian's packages)"
    local x="$WORK/exim"
    mkdir -p "$x/deb" "$x/root" "$x/srv/spool" "$x/srv/log" "$x/cli/spool" "$x/cli/log"
    chmod 777 "$x/srv/spool" "$x/srv/log" "$x/cli/spool" "$x/cli/log"
    ( cd "$x/deb" && apt-get download exim4-daemon-light exim4-base >/dev/null 2>&1 ) ||
        die "apt-get download exim4-daemon-light exim4-base failed"
    local d
    for d in "$x"/deb/*.deb; do dpkg -x "$d" "$x/root"; done
    cp /etc/passwd "$x/passwd"
    cp /etc/group "$x/group"
    echo "Debian-exim:x:65534:65534:Exim:/nonexistent:/usr/sbin/nologin" >> "$x/passwd"
    echo "Debian-exim:x:65534:" >> "$x/group"
    cat > "$x/enter.sh" <<EOF
mount --bind $x/passwd /etc/passwd
mount --bind $x/group /etc/group
mount --bind $x/root/usr/sbin /usr/sbin
exec "\$@"
EOF
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=mx.example.test" \
        -addext "subjectAltName=DNS:mx.example.test" -keyout "$x/srv/key.pem" \
        -out "$x/srv/cert.pem" 2>/dev/null || die "Exim server certificate"
    chmod 644 "$x/srv/key.pem" "$x/srv/cert.pem"
    cat > "$x/srv/exim.conf" <<EOF
primary_hostname = mx.example.test
spool_directory = $x/srv/spool
log_file_path = $x/srv/log/%slog
local_interfaces = $EXIM_MX
daemon_smtp_ports = 25
domainlist local_domains = example.test
acl_smtp_rcpt = acl_check_rcpt
pipelining_connect_advertise_hosts = *
tls_advertise_hosts = *
tls_certificate = $x/srv/cert.pem
tls_privatekey = $x/srv/key.pem
host_lookup =
begin acl
acl_check_rcpt:
  accept domains = +local_domains
  deny
begin routers
discard:
  driver = redirect
  domains = +local_domains
  data = :blackhole:
EOF
    nsx sysctl -qw net.ipv4.ip_unprivileged_port_start=0
    ip -n "$NS" addr add "$EXIM_MX/32" dev lo 2>/dev/null || true
    ip -n "$NS" addr add "$EXIM_CLIENT/32" dev lo 2>/dev/null || true
    nsx unshare -m bash "$x/enter.sh" /usr/sbin/exim4 -C "$x/srv/exim.conf" -bd \
        > "$x/srv/start.log" 2>&1 || { cat "$x/srv/start.log" >&2; die "Exim server"; }
    pf_listening "$NS" "$EXIM_MX" || { cat "$x/srv/log/"* >&2; die "Exim did not listen"; }
}

# exim_client_conf TLS(yes|no): the sending Exim, one route to the server,
# early pipelining on; without TLS it avoids STARTTLS.
# With TLS the client writes GnuTLS's key log (SSLKEYLOGFILE), which takes
# three things with Exim 4.96, each checked by hand here:
#  - keep_environment lists SSLKEYLOGFILE (Exim clears its environment);
#  - the file is under spool_directory (a relative name is taken from
#    there); Exim drops SSLKEYLOGFILE otherwise ("not under spooldir");
#  - the delivery is not a re-exec of the setuid binary: Exim re-executes
#    itself to regain root for a delivery (after -odi reception, and in the
#    daemon, which runs as the Exim user), glibc marks that exec secure, and
#    GnuTLS reads SSLKEYLOGFILE with secure_getenv: no key log at all.
#    deliver_drop_privilege (deliveries run as the Exim user, no re-exec)
#    avoids it; so would a queue run started by root (-q, -M).
# Both captures use deliver_drop_privilege, so that they are delivered alike.
exim_client_conf() {
    local x="$WORK/exim" tls keep=""
    if [ "$1" = yes ]; then
        tls="tls_verify_certificates ="
        keep="keep_environment = SSLKEYLOGFILE"
    else
        tls="hosts_avoid_tls = *"
    fi
    rm -rf "$x/cli/spool/db"   # no EHLO cached yet: the first delivery learns it
    cat > "$x/cli/exim.conf" <<EOF
primary_hostname = relay.sender.test
deliver_drop_privilege = true
$keep
spool_directory = $x/cli/spool
log_file_path = $x/cli/log/%slog
begin routers
smarthost:
  driver = manualroute
  route_list = * $EXIM_MX
  transport = remote_smtp
  self = send
begin transports
remote_smtp:
  driver = smtp
  interface = $EXIM_CLIENT
  hosts_pipe_connect = *
  $tls
EOF
}

# exim_send SUBJECT: one message, delivered at once (-odi); SSLKEYLOGFILE as
# EXIM_KEYS says (empty: none; a name relative to the client's spool directory)
EXIM_KEYS=""
exim_send() {
    printf 'Subject: %s\n\nearly pipelining test\n' "$1" |
        nsx env ${EXIM_KEYS:+SSLKEYLOGFILE="$EXIM_KEYS"} \
            unshare -m bash "$WORK/exim/enter.sh" /usr/sbin/exim4 -C "$WORK/exim/cli/exim.conf" \
            -odi -f a@sender.test b@example.test || die "Exim client"
}

capture_exim() {
    local tls name rel=smtp-exim-early-pipe-tls.keys keys="$WORK/exim/cli/spool/smtp-exim-early-pipe-tls.keys" n
    for tls in no yes; do
        name=smtp-exim-early-pipe.pcap
        EXIM_KEYS=""
        if [ $tls = yes ]; then
            name=smtp-exim-early-pipe-tls.pcap
            # the smtp transport runs as Debian-exim (uid nobody here) and
            # GnuTLS appends to the file: made beforehand, mode 0600, as
            # an administrator would (GnuTLS would create it 0666)
            rm -f "$keys"
            install -m 600 -o 65534 -g 65534 /dev/null "$keys"
            EXIM_KEYS=$rel
        fi
        log "$name"
        exim_client_conf $tls
        cap_start "$name" "$NS" lo -- "tcp port 25 and host $EXIM_MX"
        # the first delivery learns the server's EHLO reply; the second
        # pipelines EHLO (and MAIL/RCPT/BDAT, or STARTTLS) before the greeting
        exim_send "first delivery, TLS=$tls"
        exim_send "second delivery, early pipelining, TLS=$tls"
        cap_stop
    done
    EXIM_KEYS=""
    # GnuTLS's key log, written by the client Exim's smtp transport: one
    # SERVER_HANDSHAKE_TRAFFIC_SECRET for each of the two TLS sessions
    n=$(grep -c '^SERVER_HANDSHAKE_TRAFFIC_SECRET ' "$keys" 2>/dev/null || true)
    [ "${n:-0}" -eq 2 ] ||
        die "Exim (GnuTLS) wrote ${n:-0} SERVER_HANDSHAKE_TRAFFIC_SECRET lines to $keys, want 2 (one for each TLS session)"
    install -m 644 "$keys" "$OUT/smtp-exim-early-pipe-tls.keys"
    MADE+=(smtp-exim-early-pipe-tls.keys)
}

# ---------------------------------------------------------------- OpenSMTPD
# OpenSMTPD conflicts with the postfix package too: unpacked and run like
# Exim, each instance in a mount namespace of its own (the spool, the
# control socket in /run, the chroot and the mail.mda helper live at
# compiled-in paths). Debian's OpenSMTPD 6.8 cannot use its private key
# with OpenSSL 3 ("missing private key"), so as a server its STARTTLS
# fails: the sending OpenSMTPD downgrades to plaintext, which is exactly
# the capture smtp-opensmtpd-fallback.pcap keeps. As a client it speaks
# TLS to Postfix (smtp-opensmtpd-to-postfix.pcap).
OSMTPD_MX=127.0.0.30      # OpenSMTPD server                 mx.example.test
OSMTPD_CLIENT=127.0.0.31  # OpenSMTPD client (swaks hands it mail on :2525)
OSMTPD_PF=127.0.0.32      # Postfix with STARTTLS            mx2.example.test

setup_opensmtpd() {
    log "OpenSMTPD (unpacked from Debian's package)"
    local x="$WORK/osmtpd" r
    mkdir -p "$x/deb" "$x/root"
    ( cd "$x/deb" && apt-get download opensmtpd >/dev/null 2>&1 ) ||
        die "apt-get download opensmtpd failed"
    dpkg -x "$x"/deb/opensmtpd_*.deb "$x/root"
    cp /etc/passwd "$x/passwd"
    cp /etc/group "$x/group"
    printf 'opensmtpd:x:65534:65534::/var/lib/opensmtpd/empty:/usr/sbin/nologin\nopensmtpq:x:65533:65534::/var/lib/opensmtpd/empty:/usr/sbin/nologin\n' >> "$x/passwd"
    printf 'opensmtpd:x:65532:\nopensmtpq:x:65533:\n' >> "$x/group"
    for r in srv cli; do
        mkdir -p "$x/$r/spool" "$x/$r/run"
        chmod 711 "$x/$r/spool"
    done
    cat > "$x/enter.sh" <<EOF
# enter.sh ROLE CMD...: one instance's private view of the compiled-in paths
r=\$1; shift
mount --bind $x/passwd /etc/passwd
mount --bind $x/group /etc/group
mount -t tmpfs tmpfs /var/lib
mkdir -p /var/lib/opensmtpd/empty
mount -t tmpfs tmpfs /var/spool
mkdir -p /var/spool/smtpd
mount --bind $x/\$r/spool /var/spool/smtpd
mount --bind $x/\$r/run /run
mount --bind $x/root/usr/libexec /usr/libexec
exec "\$@"
EOF
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
        -subj "/CN=mx.example.test" -keyout "$x/srv/key.pem" -out "$x/srv/cert.pem" 2>/dev/null ||
        die "OpenSMTPD server certificate"
    chmod 600 "$x/srv/key.pem"
    cat > "$x/srv/smtpd.conf" <<EOF
pki mx.example.test cert "$x/srv/cert.pem"
pki mx.example.test key "$x/srv/key.pem"
listen on $OSMTPD_MX tls pki mx.example.test hostname mx.example.test
action "discard" mda "cat >/dev/null" virtual { "@" = nobody }
match from any for domain "example.test" action "discard"
EOF
    ip -n "$NS" addr add "$OSMTPD_MX/32" dev lo 2>/dev/null || true
    ip -n "$NS" addr add "$OSMTPD_CLIENT/32" dev lo 2>/dev/null || true
    ip -n "$NS" addr add "$OSMTPD_PF/32" dev lo 2>/dev/null || true
    nsx unshare -m bash "$x/enter.sh" srv "$x/root/usr/sbin/smtpd" -d -f "$x/srv/smtpd.conf" \
        > "$x/srv.log" 2>&1 &
    BG_PIDS+=($!)
    pf_listening "$NS" "$OSMTPD_MX" || { cat "$x/srv.log" >&2; die "OpenSMTPD did not listen"; }
    # the Postfix the client speaks TLS to
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=mx2.example.test" \
        -addext "subjectAltName=DNS:mx2.example.test" -keyout "$x/pf.key" -out "$x/pf.pem" \
        2>/dev/null || die "Postfix certificate"
    chmod 644 "$x/pf.key" "$x/pf.pem"
    pf_new osmtpd-peer mx2.example.test "$OSMTPD_PF" <<EOF
smtpd_tls_security_level = may
smtpd_tls_chain_files = $x/pf.key, $x/pf.pem
EOF
    nsx postfix -c "$WORK/pf-osmtpd-peer/etc" start > "$x/pf.log" 2>&1 || die "Postfix (OpenSMTPD peer)"
    pf_listening "$NS" "$OSMTPD_PF" || die "Postfix did not listen on $OSMTPD_PF"
}

# osmtpd_client TARGET: (re)starts the sending OpenSMTPD, relaying to TARGET
osmtpd_client() {
    local x="$WORK/osmtpd"
    if [ -n "${OSMTPD_CLI_PID:-}" ]; then
        # the wrapper's pid is not smtpd's: stop the daemon by its command line
        pkill -f "smtpd -d -v -f $x/cli/smtpd.conf" || true
        wait "$OSMTPD_CLI_PID" 2>/dev/null || true
        local i
        for i in $(seq 50); do
            nsx ss -Hltn | grep -q "$OSMTPD_CLIENT:2525" || break
            sleep 0.1
        done
    fi
    rm -rf "$x/cli/spool"/* "$x/cli/run"/*
    cat > "$x/cli/smtpd.conf" <<EOF
listen on $OSMTPD_CLIENT port 2525
action "out" relay host smtp://$1 src $OSMTPD_CLIENT helo relay.sender.test
match from any for any action "out"
EOF
    nsx unshare -m bash "$x/enter.sh" cli "$x/root/usr/sbin/smtpd" -d -v -f "$x/cli/smtpd.conf" \
        > "$x/cli-$1.log" 2>&1 &
    OSMTPD_CLI_PID=$!
    BG_PIDS+=($OSMTPD_CLI_PID)
    pf_listening "$NS" "$OSMTPD_CLIENT" 2525 || { cat "$x/cli-$1.log" >&2; die "OpenSMTPD client"; }
}

capture_opensmtpd() {
    local x="$WORK/osmtpd" target name
    for target in $OSMTPD_MX $OSMTPD_PF; do
        name=smtp-opensmtpd-fallback.pcap
        [ "$target" = "$OSMTPD_PF" ] && name=smtp-opensmtpd-to-postfix.pcap
        log "$name"
        osmtpd_client "$target"
        cap_start "$name" "$NS" lo -- "tcp port 25 and host $target"
        nsx swaks --server "$OSMTPD_CLIENT:2525" --from a@sender.test --to b@example.test \
            --header "Subject: sent by OpenSMTPD to $target" > "$x/swaks-$target.log" 2>&1 ||
            die "swaks to the OpenSMTPD client"
        wait_for_log "$x/cli-$target.log" 'mta delivery .*result="Ok"' 20
        # the client's own account of the first capture
        if [ "$target" = "$OSMTPD_MX" ]; then
            grep -q "opportunistic TLS failed, downgrading to plain" "$x/cli-$target.log" ||
                die "OpenSMTPD did not report the downgrade"
        fi
        cap_stop
    done
}

# ---------------------------------------------------------------- TLS 1.3 with key logs
# smtp-tls13-keylog: one Postfix server (STARTTLS, TLS 1.3 only, key exchange
# X25519 only) with a certificate of a third test CA ("keylog-ca", made
# afresh on every run), and five clients, each writing the NSS key log of its
# own session (smtp-tls13-NAME.keys next to smtp-tls13-NAME.pcap): openssl
# s_client, python3 smtplib, gnutls-cli, openssl s_client whose first key
# share is P-384 (so the server answers with a HelloRetryRequest), and a
# Postfix smtp client that has no key-log option: its keys come from the
# LD_PRELOAD shim sensor/shim/keylog_shim.c, built from this tree, which
# writes the handshake secrets only.
TLS13MX=127.0.0.13  # Postfix, STARTTLS, TLS 1.3 only, X25519 only (CA3)   mx.example.test
RELAY13=127.0.0.14  # Postfix client through the key-log shim -> $TLS13MX   relay.sender.test
REPO="$(dirname "$HERE")"

# A third test CA ("keylog-ca"), RSA 2048 like the others, 10 years:
#   ca3.example.test.pem        CA
#   mx-tls13.example.test.pem   CN/SAN mx.example.test, the TLS 1.3 server's
make_certs_ca3() {
    log "certificates (third test CA 'keylog-ca': mx.example.test for the TLS 1.3 key-log captures)"
    local t="$WORK/tls3"
    mkdir -p "$t"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -sha256 \
        -keyout "$t/ca.key" -out "$t/ca.pem" \
        -subj "/O=mxwatch test/CN=mxwatch Test CA3 (keylog-ca) example.test" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null || die "CA3"
    openssl req -newkey rsa:2048 -nodes -sha256 -keyout "$t/mx.key" -out "$t/mx.csr" \
        -subj "/O=mxwatch test/CN=mx.example.test" 2>/dev/null || die "CA3 leaf request"
    printf 'subjectAltName=DNS:mx.example.test\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n' > "$t/mx.ext"
    openssl x509 -req -in "$t/mx.csr" -CA "$t/ca.pem" -CAkey "$t/ca.key" \
        -set_serial "0x$(openssl rand -hex 8)" -days 3650 -sha256 \
        -extfile "$t/mx.ext" -out "$t/mx.pem" 2>/dev/null || die "CA3 leaf"
    chmod 644 "$t"/*.pem
    chmod 600 "$t"/*.key

    mkdir -p "$OUT/certs"
    cp "$t/ca.pem" "$OUT/certs/ca3.example.test.pem"
    cp "$t/mx.pem" "$OUT/certs/mx-tls13.example.test.pem"
    # replace (or add) only these two lines of fingerprints.txt
    local fp="$OUT/certs/fingerprints.txt" f
    [ -f "$fp" ] || printf '# file  cert_sha256  spki_sha256  (lowercase hex, DER)\n' > "$fp"
    grep -Ev '^(ca3\.example\.test|mx-tls13\.example\.test)\.pem ' "$fp" > "$t/fp.txt" || true
    for f in ca3.example.test.pem mx-tls13.example.test.pem; do
        fingerprint_line "$f" >> "$t/fp.txt"
    done
    cat "$t/fp.txt" > "$fp"
}

setup_tls13_keylog() {
    log "Postfix instances (TLS 1.3 server $TLS13MX; relay $RELAY13 with the key-log shim)"
    local t="$WORK/tls3" k="$WORK/keylog"
    mkdir -p "$k"
    ip -n "$NS" addr add "$TLS13MX/32" dev lo 2>/dev/null || true
    ip -n "$NS" addr add "$RELAY13/32" dev lo 2>/dev/null || true
    # s_client and gnutls-cli cannot choose their source address: the local
    # route to the server names $CLIENT as the preferred one, so that they do
    # not connect from $TLS13MX to itself
    ip -n "$NS" route replace local "$TLS13MX" dev lo table local proto kernel scope host src "$CLIENT"
    pf_new tls13 mx.example.test "$TLS13MX" <<EOF
smtpd_tls_security_level = may
smtpd_tls_chain_files = $t/mx.key, $t/mx.pem, $t/ca.pem
smtpd_tls_loglevel = 1
smtpd_tls_protocols = >=TLSv1.3
smtpd_tls_mandatory_protocols = >=TLSv1.3
# one key-exchange group (and no FFDHE in TLS 1.3 with Postfix 3.7): a client
# whose first key share is another group gets a HelloRetryRequest
tls_eecdh_auto_curves = X25519
EOF
    # the shim as 'make' builds it, into the work dir
    make -s -C "$REPO" BUILD="$k/build" "$k/build/mxwatch-keylog.so" > "$k/make.log" 2>&1 ||
        { cat "$k/make.log" >&2; die "building the key-log shim (sensor/shim/keylog_shim.c)"; }
    pf_new relay13 relay.sender.test "$RELAY13" <<EOF
# relays everything to the TLS 1.3 server; opportunistic TLS, chain checked
# against CA3 (the log says "Trusted"); no TLS offered to swaks (smtpd)
relay_domains =
default_transport = smtp
relayhost = [$TLS13MX]:25
smtp_bind_address = $RELAY13
smtp_tls_security_level = may
smtp_tls_servername = mx.example.test
smtp_tls_CAfile = $t/ca.pem
smtp_tls_loglevel = 1
smtp_connection_cache_on_demand = no
# postfix(1) and master(8) pass these to every daemon of the instance: smtp
# (not chrooted) loads the shim, which opens the key log at its first SSL_CTX
import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ XAUTHORITY DISPLAY LANG=C POSTLOG_SERVICE POSTLOG_HOSTNAME LD_PRELOAD=$k/build/mxwatch-keylog.so MXWATCH_KEYLOG=$WORK/cap/smtp-tls13-postfix.keys
EOF
    # Python's client offers TLS_AES_256_GCM_SHA384 alone: its ssl module
    # cannot set TLS 1.3 suites, OpenSSL's configuration can
    cat > "$t/aes256.cnf" <<EOF
openssl_conf = openssl_init
[openssl_init]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
MinProtocol = TLSv1.3
Ciphersuites = TLS_AES_256_GCM_SHA384
EOF
    chmod 755 "$WORK"
    pf_start tls13 "$TLS13MX"
    pf_start relay13 "$RELAY13"
}

# tls13_dialogue SUBJECT: the client's lines after the TLS handshake, for
# s_client and gnutls-cli (they send what they read), each after the reply to
# the one before. CRLF is written here: gnutls-cli --crlf mangles a read that
# holds more than one line. The message goes in one write (cat of a file; bash
# writes line by line), so the client reads it at once.
tls13_dialogue() {
    local l msg="$WORK/tls13-message.txt"
    printf 'From: <alice@sender.test>\r\nTo: <bob@example.test>\r\nSubject: %s\r\n\r\nA short message sent inside TLS 1.3.\r\n.\r\n' "$1" > "$msg"
    sleep 1.5
    for l in "EHLO client.sender.test" "MAIL FROM:<alice@sender.test>" "RCPT TO:<bob@example.test>" DATA; do
        printf '%s\r\n' "$l"
        sleep 0.5
    done
    cat "$msg"
    sleep 0.5
    printf 'QUIT\r\n'
    sleep 1
}

# s_client_tls13 NAME SUBJECT [s_client options...]: one session, key log by s_client
s_client_tls13() {
    local name=$1 subject=$2; shift 2
    local keys="$WORK/cap/$name.keys"
    rm -f "$keys"
    tls13_dialogue "$subject" |
        nsx timeout 30 openssl s_client -connect "$TLS13MX:25" -starttls smtp -name client.sender.test \
            -servername mx.example.test -verify_hostname mx.example.test -verify_return_error \
            -CAfile "$WORK/tls3/ca.pem" -tls1_3 -nocommands -keylogfile "$keys" "$@" \
            > "$WORK/s_client-$name.log" 2>&1 ||
        { cat "$WORK/s_client-$name.log" >&2; die "openssl s_client ($name)"; }
}

# keys_done NAME: the client's key log next to its capture
keys_done() {
    local keys="$WORK/cap/$1.keys"
    grep -q '^SERVER_HANDSHAKE_TRAFFIC_SECRET ' "$keys" 2>/dev/null ||
        die "$1: the client wrote no SERVER_HANDSHAKE_TRAFFIC_SECRET to $keys"
    install -m 644 "$keys" "$OUT/$1.keys"
    MADE+=("$1.keys")
}

capture_tls13_keylog() {
    local f25="tcp port 25 and host $TLS13MX" name keys

    name=smtp-tls13-aes128
    log "$name.pcap (openssl s_client, TLS_AES_128_GCM_SHA256)"
    cap_start $name.pcap "$NS" lo -- "$f25"
    s_client_tls13 $name "TLS 1.3, AES-128-GCM, key log by openssl s_client" \
        -ciphersuites TLS_AES_128_GCM_SHA256
    cap_stop
    keys_done $name

    name=smtp-tls13-aes256
    log "$name.pcap (python3 smtplib, TLS_AES_256_GCM_SHA384)"
    keys="$WORK/cap/$name.keys"
    rm -f "$keys"
    cap_start $name.pcap "$NS" lo -- "$f25"
    nsx env OPENSSL_CONF="$WORK/tls3/aes256.cnf" "$PY" - "$TLS13MX" "$CLIENT" "$WORK/tls3/ca.pem" "$keys" \
        > "$WORK/smtplib-$name.log" 2>&1 <<'EOF' || { cat "$WORK/smtplib-$name.log" >&2; die "python3 smtplib"; }
import smtplib, ssl, sys
server, source, cafile, keys = sys.argv[1:5]
ctx = ssl.create_default_context(cafile=cafile)
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
ctx.keylog_filename = keys
s = smtplib.SMTP(server, 25, local_hostname="client.sender.test", source_address=(source, 0),
                 timeout=15)
s._host = "mx.example.test"   # the SNI and the name checked (we connected to an IP address)
s.ehlo()
s.starttls(context=ctx)
print(s.sock.version(), s.sock.cipher())
s.sendmail("alice@sender.test", ["bob@example.test"],
           "From: <alice@sender.test>\r\nTo: <bob@example.test>\r\n"
           "Subject: TLS 1.3, AES-256-GCM, key log by python3 smtplib\r\n\r\n"
           "A short message sent inside TLS 1.3.\r\n")
s.quit()
EOF
    cap_stop
    keys_done $name

    name=smtp-tls13-chacha20
    log "$name.pcap (gnutls-cli, TLS_CHACHA20_POLY1305_SHA256)"
    keys="$WORK/cap/$name.keys"
    rm -f "$keys"
    cap_start $name.pcap "$NS" lo -- "$f25"
    tls13_dialogue "TLS 1.3, ChaCha20-Poly1305, key log by gnutls-cli" |
        nsx env SSLKEYLOGFILE="$keys" timeout 30 gnutls-cli --starttls-proto=smtp --port=25 \
            --sni-hostname=mx.example.test --verify-hostname=mx.example.test \
            --x509cafile="$WORK/tls3/ca.pem" \
            --priority='NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+CHACHA20-POLY1305:-GROUP-ALL:+GROUP-X25519' \
            "$TLS13MX" > "$WORK/gnutls-cli.log" 2>&1 ||
        { cat "$WORK/gnutls-cli.log" >&2; die "gnutls-cli"; }
    cap_stop
    keys_done $name

    name=smtp-tls13-hrr
    log "$name.pcap (openssl s_client, first key share P-384: HelloRetryRequest)"
    cap_start $name.pcap "$NS" lo -- "$f25"
    s_client_tls13 $name "TLS 1.3 after a HelloRetryRequest, key log by openssl s_client" \
        -groups P-384:X25519
    cap_stop
    keys_done $name

    name=smtp-tls13-postfix
    log "$name.pcap (Postfix smtp client, key log by the LD_PRELOAD shim)"
    local alog="$WORK/pf-relay13/maillog" n
    rm -f "$WORK/cap/$name.keys"
    cap_start $name.pcap "$NS" lo -- "$f25 and host $RELAY13"
    n=$(grep -c 'status=sent' "$alog" || true)
    swaks_ns relay13 --server $RELAY13 -li $CLIENT \
        --header "Subject: TLS 1.3, relayed by Postfix, key log by the mxwatch shim"
    wait_for_log_count "$alog" 'relay=.*status=sent' $((n + 1))
    cap_stop
    grep -q 'Trusted TLS connection established to .*TLSv1.3' "$alog" ||
        { cat "$alog" >&2; die "Postfix relay: no trusted TLS 1.3 connection in its log"; }
    keys_done $name
}

# ---------------------------------------------------------------- capture
CAP_FILE=""
# cap_start NAME NETNS IFACE [tcpdump args...] -- FILTER
cap_start() {
    local name=$1 ns=$2 iface=$3; shift 3
    local opts=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do opts+=("$1"); shift; done
    [ "${1:-}" = "--" ] && shift
    CAP_FILE="$WORK/cap/$name"
    mkdir -p "$WORK/cap"
    rm -f "$CAP_FILE"
    ip netns exec "$ns" tcpdump -i "$iface" -s 0 -U -Z root "${opts[@]}" -w "$CAP_FILE" "$@" \
        > "$CAP_FILE.log" 2>&1 &
    CAP_PID=$!
    local i
    for i in $(seq 50); do
        grep -q "listening on" "$CAP_FILE.log" 2>/dev/null && { sleep 0.3; return 0; }
        sleep 0.1
    done
    cat "$CAP_FILE.log" >&2
    die "tcpdump did not start for $name"
}

dumpcap_start() {   # dumpcap_start NAME FILTER  (pcapng, loopback of $NS)
    local name=$1 filter=$2
    CAP_FILE="$WORK/cap/$name"
    mkdir -p "$WORK/cap"
    rm -f "$CAP_FILE"
    nsx dumpcap -i lo -s 0 -f "$filter" -w "$CAP_FILE" > "$CAP_FILE.log" 2>&1 &
    CAP_PID=$!
    local i
    for i in $(seq 50); do
        grep -q "Capturing on" "$CAP_FILE.log" 2>/dev/null && { sleep 0.5; return 0; }
        sleep 0.1
    done
    cat "$CAP_FILE.log" >&2
    die "dumpcap did not start for $name"
}

cap_stop() {   # let FIN/ACKs land, stop cleanly, move into pcaps/
    sleep 1
    # tcpdump stops on SIGINT; dumpcap (started in the background of a
    # non-interactive shell, where SIGINT is ignored) stops on SIGTERM
    case "$CAP_FILE" in *.pcapng) kill -TERM "$CAP_PID" ;; *) kill -INT "$CAP_PID" ;; esac
    wait "$CAP_PID" || true
    CAP_PID=""
    install -m 644 "$CAP_FILE" "$OUT/$(basename "$CAP_FILE")"
    MADE+=("$(basename "$CAP_FILE")")
}
MADE=()

# ---------------------------------------------------------------- clients
BODY=""
make_body() {
    local i
    BODY="$WORK/body.txt"
    {
        echo "Hello Bob,"
        echo
        for i in $(seq -w 1 30); do
            echo "Line $i of a plain text test message for mxwatch; nothing secret here."
        done
        echo
        echo "Regards, Alice"
    } > "$BODY"
}

# swaks in the main namespace, from $CLIENT, with the common arguments
swaks_ns() {
    local logf="$WORK/swaks-$1.log"; shift
    echo "+ swaks $*" > "$logf"
    if ! nsx swaks --helo client.sender.test --from alice@sender.test --to bob@example.test \
            --timeout 15 "$@" >> "$logf" 2>&1; then
        echo "(swaks exited non-zero, see below)" >> "$logf"
        SWAKS_RC=1
    else
        SWAKS_RC=0
    fi
}

rawclient() { nsx "$PY" "$TOOLS/smtp-raw-client.py" "$@"; }

wait_for_log() {   # wait_for_log FILE REGEX [SECONDS]
    local i
    for i in $(seq $(( ${3:-20} * 5 ))); do
        grep -Eq "$2" "$1" 2>/dev/null && return 0
        sleep 0.2
    done
    die "timed out waiting for /$2/ in $1"
}

# ---------------------------------------------------------------- the captures
capture_all() {
    local f25="tcp port 25"

    log "smtp-plain.pcap"
    cap_start smtp-plain.pcap "$NS" lo -- "$f25 and host $PLAIN"
    swaks_ns plain --server $PLAIN -li $CLIENT --header "Subject: plain SMTP test" --body "@$BODY"
    cap_stop

    log "smtp-starttls-tls12.pcap"
    cap_start smtp-starttls-tls12.pcap "$NS" lo -- "$f25 and host $TLSMX"
    swaks_ns tls12 --server $TLSMX -li $CLIENT --tls --tls-protocol tlsv1_2 \
        --tls-sni mx.example.test --tls-verify --tls-ca-path "$WORK/tls/ca.pem" \
        --header "Subject: TLS 1.2 test" --body "@$BODY"
    cap_stop

    log "smtp-starttls-tls13.pcap"
    cap_start smtp-starttls-tls13.pcap "$NS" lo -- "$f25 and host $TLSMX"
    swaks_ns tls13 --server $TLSMX -li $CLIENT --tls --tls-protocol tlsv1_3 \
        --tls-sni mx.example.test --tls-verify --tls-ca-path "$WORK/tls/ca.pem" \
        --header "Subject: TLS 1.3 test" --body "@$BODY"
    cap_stop

    log "smtp-helo.pcap"
    cap_start smtp-helo.pcap "$NS" lo -- "$f25 and host $PLAIN"
    swaks_ns helo --server $PLAIN -li $CLIENT --protocol SMTP --header "Subject: HELO only"
    cap_stop

    log "smtp-starttls-refused-454.pcap"
    cap_start smtp-starttls-refused-454.pcap "$NS" lo -- "$f25 and host $BROKEN"
    swaks_ns refused --server $BROKEN -li $CLIENT --tls-optional \
        --header "Subject: TLS refused by the server, sent in plaintext"
    cap_stop

    log "smtp-starttls-stripped.pcap"
    nsx "$PY" "$TOOLS/strip-proxy.py" $PROXY 25 $TLSMX 25 $PROXY > "$WORK/strip-proxy.log" 2>&1 &
    BG_PIDS+=($!)
    local proxy_pid=$!
    wait_for_log "$WORK/strip-proxy.log" "listening" 10
    cap_start smtp-starttls-stripped.pcap "$NS" lo -- "$f25 and host $PROXY and host $CLIENT"
    swaks_ns stripped --server $PROXY -li $CLIENT --tls-optional-strict \
        --header "Subject: TLS capability stripped by a middlebox" --body "@$BODY"
    cap_stop
    kill "$proxy_pid"; wait "$proxy_pid" 2>/dev/null || true

    log "smtp-pipelining.pcap"
    cap_start smtp-pipelining.pcap "$NS" lo -- "$f25 and host $PLAIN"
    swaks_ns pipelining --server $PLAIN -li $CLIENT --pipeline \
        --to bob@example.test,carol@example.test --header "Subject: PIPELINING test"
    cap_stop

    log "smtp-bdat.pcap"
    cap_start smtp-bdat.pcap "$NS" lo -- "$f25 and host $PLAIN"
    rawclient bdat --server $PLAIN --bind $CLIENT > "$WORK/raw-bdat.log" 2>&1
    cap_stop

    log "smtp-auth-plaintext.pcap"
    cap_start smtp-auth-plaintext.pcap "$NS" lo -- "$f25 and host $AUTHMX"
    swaks_ns authplain --server $AUTHMX -li $CLIENT --auth PLAIN \
        --auth-user alice@example.test --auth-password 'Secret-Passw0rd' \
        --header "Subject: AUTH PLAIN without TLS"
    cap_stop

    log "smtp-auth-login.pcap"
    cap_start smtp-auth-login.pcap "$NS" lo -- "$f25 and host $AUTHMX"
    swaks_ns authlogin --server $AUTHMX -li $CLIENT --auth LOGIN \
        --auth-user alice@example.test --auth-password 'Secret-Passw0rd' \
        --header "Subject: AUTH LOGIN without TLS"
    cap_stop

    log "smtp-ipv6.pcap"
    cap_start smtp-ipv6.pcap "$NS" lo -- "ip6 and $f25"
    swaks_ns ipv6 -6 --server "$TLSMX6" -li "$CLIENT6" --tls --tls-protocol tlsv1_2 \
        --tls-sni mx.example.test --header "Subject: SMTP over IPv6 with TLS 1.2"
    cap_stop

    log "smtp-vlan.pcap / smtp-qinq.pcap"
    local mode file
    for mode in dot1q qinq; do
        file=smtp-vlan.pcap; [ $mode = qinq ] && file=smtp-qinq.pcap
        ip netns exec "$NS_SW" "$PY" "$TOOLS/vlan-bridge.py" $mode sw-c tr-a tr-b sw-s \
            > "$WORK/vlan-$mode.log" 2>&1 &
        local vb=$!
        BG_PIDS+=($vb)
        wait_for_log "$WORK/vlan-$mode.log" "vlan-bridge" 10
        # fresh neighbour caches so the ARP exchange is part of the capture
        ip -n "$NS_C" neigh flush dev c0 2>/dev/null || true
        nsx ip neigh flush dev s0 2>/dev/null || true
        cap_start $file "$NS_SW" tr-a --
        local logf="$WORK/swaks-vlan-$mode.log"
        ip netns exec "$NS_C" swaks --server $VSERVER -li $VCLIENT --helo client.sender.test \
            --from alice@sender.test --to bob@example.test --timeout 15 \
            --header "Subject: SMTP over a VLAN trunk ($mode)" > "$logf" 2>&1 || true
        cap_stop
        kill $vb; wait $vb 2>/dev/null || true
    done

    log "smtp-injection.pcap"
    cap_start smtp-injection.pcap "$NS" lo -- "$f25 and host $TLSMX"
    rawclient inject --server $TLSMX --bind $CLIENT --inject "MAIL FROM:<attacker@evil.test>" \
        --cafile "$WORK/tls/ca.pem" --sni mx.example.test --tls-max 1.2 \
        > "$WORK/raw-inject.log" 2>&1 || true
    cap_stop

    log "smtp-sll.pcap / smtp-sll2.pcap"
    cap_start smtp-sll.pcap "$NS" any -y LINUX_SLL -- "$f25 and host $PLAIN"
    swaks_ns sll --server $PLAIN -li $CLIENT --header "Subject: Linux cooked capture v1"
    cap_stop
    cap_start smtp-sll2.pcap "$NS" any -y LINUX_SLL2 -- "$f25 and host $PLAIN"
    swaks_ns sll2 --server $PLAIN -li $CLIENT --header "Subject: Linux cooked capture v2"
    cap_stop

    log "smtp-mta-relay.pcap (Postfix -> Postfix, opportunistic TLS, default = TLS 1.3)"
    local alog="$WORK/pf-relay/maillog" n
    cap_start smtp-mta-relay.pcap "$NS" lo -- "$f25 and host $RELAYA and host $TLSMX"
    n=$(grep -c 'status=sent' "$alog" || true)
    swaks_ns relay13 --server $RELAYA -li $CLIENT --header "Subject: relayed by Postfix" --body "@$BODY"
    wait_for_log_count "$alog" 'relay=.*status=sent' $((n + 1))
    cap_stop

    log "smtp-mta-relay-tls12-anon.pcap (client capped at TLS 1.2: Postfix 'may' picks an anonymous ADH suite)"
    nsx postconf -c "$WORK/pf-relay/etc" -e 'smtp_tls_protocols = >=TLSv1.2, <=TLSv1.2' \
        'smtp_tls_mandatory_protocols = >=TLSv1.2, <=TLSv1.2'
    nsx postfix -c "$WORK/pf-relay/etc" reload >/dev/null 2>&1
    sleep 1
    cap_start smtp-mta-relay-tls12-anon.pcap "$NS" lo -- "$f25 and host $RELAYA and host $TLSMX"
    n=$(grep -c 'status=sent' "$alog" || true)
    swaks_ns relay12anon --server $RELAYA -li $CLIENT --header "Subject: relayed by Postfix, TLS 1.2 anonymous" --body "@$BODY"
    wait_for_log_count "$alog" 'relay=.*status=sent' $((n + 1))
    cap_stop

    log "smtp-mta-relay-tls12.pcap (TLS 1.2, aNULL excluded: certificate visible)"
    nsx postconf -c "$WORK/pf-relay/etc" -e 'smtp_tls_exclude_ciphers = aNULL'
    nsx postfix -c "$WORK/pf-relay/etc" reload >/dev/null 2>&1
    sleep 1
    cap_start smtp-mta-relay-tls12.pcap "$NS" lo -- "$f25 and host $RELAYA and host $TLSMX"
    n=$(grep -c 'status=sent' "$alog" || true)
    swaks_ns relay12 --server $RELAYA -li $CLIENT --header "Subject: relayed by Postfix, TLS 1.2" --body "@$BODY"
    wait_for_log_count "$alog" 'relay=.*status=sent' $((n + 1))
    cap_stop

    log "smtp-tls-failed-fallback.pcap"
    cap_start smtp-tls-failed-fallback.pcap "$NS" lo -- "$f25 and host $NOCERT"
    swaks_ns fallback1 --server $NOCERT -li $CLIENT --tls-optional \
        --header "Subject: first try, TLS handshake fails"
    sleep 1
    swaks_ns fallback2 --server $NOCERT -li $CLIENT \
        --header "Subject: retry in plaintext after the TLS failure"
    cap_stop

    log "smtp-port2525.pcap"
    cap_start smtp-port2525.pcap "$NS" lo -- "tcp port 2525 and host $PLAIN"
    swaks_ns p2525 --server $PLAIN --port 2525 -li $CLIENT --header "Subject: SMTP on port 2525"
    cap_stop

    log "nonsmtp-mixed.pcap"
    mkdir -p "$WORK/www"
    printf '<html><body><p>mxwatch test page</p></body></html>\n' > "$WORK/www/index.html"
    nsx "$PY" -m http.server 80 --bind $WEB --directory "$WORK/www" > "$WORK/http.log" 2>&1 &
    BG_PIDS+=($!)
    nsx openssl s_server -accept "$WEB:443" -cert "$WORK/tls/www.pem" -key "$WORK/tls/www.key" \
        -cert_chain "$WORK/tls/ca.pem" -www -quiet > "$WORK/s_server.log" 2>&1 &
    BG_PIDS+=($!)
    local spki tlsa
    spki=$(openssl x509 -in "$WORK/tls/mx.pem" -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1)
    tlsa="030101$spki"
    nsx dnsmasq --keep-in-foreground --no-resolv --no-hosts --no-poll --bind-interfaces \
        --listen-address=$DNS --port=53 --user=nobody --pid-file= --log-queries \
        --log-facility=- --local=/example.test/ --local=/sender.test/ \
        --mx-host=example.test,mx.example.test,10 \
        --host-record=mx.example.test,$TLSMX,$TLSMX6 \
        --host-record=www.example.test,$WEB \
        --txt-record=_mta-sts.example.test,"v=STSv1; id=20240101T000000;" \
        --txt-record=example.test,"v=spf1 mx -all" \
        --dns-rr=_25._tcp.mx.example.test,52,$tlsa \
        > "$WORK/dnsmasq.log" 2>&1 &
    BG_PIDS+=($!)
    local i
    for i in $(seq 50); do
        nsx ss -Hlnt "sport = :80" | grep -q "$WEB" && nsx ss -Hlnt "sport = :443" | grep -q "$WEB" \
            && nsx ss -Hlnu "sport = :53" | grep -q "$DNS" && break
        sleep 0.2
    done
    cap_start nonsmtp-mixed.pcap "$NS" lo -- "host $WEB or host $DNS"
    {
        nsx dig @$DNS -b $CLIENT +norecurse +noedns example.test MX
        nsx dig @$DNS -b $CLIENT mx.example.test A
        nsx dig @$DNS -b $CLIENT mx.example.test AAAA
        nsx dig @$DNS -b $CLIENT +tcp _25._tcp.mx.example.test TLSA
        nsx dig @$DNS -b $CLIENT +tcp _mta-sts.example.test TXT
        nsx curl -sS --noproxy '*' --interface $CLIENT --resolve www.example.test:80:$WEB \
            http://www.example.test/index.html
        # HTTPS (TLS 1.2, so the certificate is visible) to openssl s_server;
        # curl rather than s_client because s_client cannot pick its source address
        nsx curl -sS --noproxy '*' --interface $CLIENT --resolve www.example.test:443:$WEB \
            --cacert "$WORK/tls/ca.pem" --tlsv1.2 --tls-max 1.2 --http1.1 -o /dev/null \
            -w 'https status %{http_code}\n' https://www.example.test/
    } > "$WORK/nonsmtp-clients.log" 2>&1 || true
    cap_stop

    log "smtp-multi.pcapng (dumpcap, pcapng: one plaintext + one STARTTLS session)"
    dumpcap_start smtp-multi.pcapng "tcp port 25 and host $CLIENT and (host $PLAIN or host $TLSMX)"
    swaks_ns multi1 --server $PLAIN -li $CLIENT --header "Subject: pcapng session 1, plaintext"
    swaks_ns multi2 --server $TLSMX -li $CLIENT --tls --tls-sni mx.example.test \
        --header "Subject: pcapng session 2, with TLS"
    cap_stop
}

# one scenario each; swaks does not verify the certificate unless told to
# (no --tls-verify), so it goes on and sends the mail inside TLS
capture_expired() {
    log "smtp-starttls-expired-cert.pcap"
    cap_start smtp-starttls-expired-cert.pcap "$NS" lo -- "tcp port 25 and host $EXPIRED"
    swaks_ns expired --server $EXPIRED -li $CLIENT --tls --tls-protocol tlsv1_2 \
        --tls-sni mx.example.test --header "Subject: STARTTLS, expired server certificate"
    cap_stop
}

capture_wrongname() {
    log "smtp-starttls-wrongname-cert.pcap"
    cap_start smtp-starttls-wrongname-cert.pcap "$NS" lo -- "tcp port 25 and host $WRONGNAME"
    swaks_ns wrongname --server $WRONGNAME -li $CLIENT --tls --tls-protocol tlsv1_2 \
        --tls-sni mx.example.test --header "Subject: STARTTLS, certificate for another name"
    cap_stop
}

# hostile client bytes, each command its own write: EHLO (then HELO if the
# EHLO is refused) with a bare CR, ESC [31m, quotes, backslash, DEL, 0x01 in
# the name; AUTH PLAIN in the clear; MAIL; RCPT; RCPT with ESC ]0;pwn BEL; QUIT
capture_hostile_ehlo() {
    log "smtp-hostile-ehlo.pcap"
    cap_start smtp-hostile-ehlo.pcap "$NS" lo -- "tcp port 25 and host $AUTHMX"
    rawclient hostile --server $AUTHMX --bind $CLIENT \
        --auth-user alice@example.test --auth-password 'Secret-Passw0rd' \
        > "$WORK/raw-hostile.log" 2>&1 || { cat "$WORK/raw-hostile.log" >&2; die "hostile client failed"; }
    cap_stop
    sed 's/^/    /' "$WORK/raw-hostile.log"
}

wait_for_log_count() {   # FILE REGEX COUNT
    local i
    for i in $(seq 100); do
        [ "$(grep -Ec "$2" "$1" 2>/dev/null || true)" -ge "$3" ] && return 0
        sleep 0.2
    done
    cat "$1" >&2
    die "timed out waiting for $3 x /$2/ in $1"
}

# ---------------------------------------------------------------- verification
FAILS=0
CHECK_KEYLOG=""   # a key log for tshark, see kcheck
count() { tshark -r "$OUT/$1" ${CHECK_KEYLOG:+-o "tls.keylog_file:$CHECK_KEYLOG"} -Y "$2" 2>/dev/null | wc -l; }
check() {   # check FILE DESCRIPTION FILTER OP N
    local n; n=$(count "$1" "$3")
    if [ "$n" "$4" "$5" ]; then
        printf '    ok    %-52s (%s: %s)\n' "$2" "$3" "$n"
    else
        printf '    FAIL  %-52s (%s: %s, want %s %s)\n' "$2" "$3" "$n" "$4" "$5"
        FAILS=$((FAILS + 1))
    fi
}
check_encap() {
    local e; e=$(capinfos -E "$OUT/$1" | sed -n 's/^File encapsulation: *//p')
    if [ "$e" = "$2" ]; then printf '    ok    encapsulation %s\n' "$e"
    else printf '    FAIL  encapsulation %s, want %s\n' "$e" "$2"; FAILS=$((FAILS + 1)); fi
}
check_type() {
    local t; t=$(capinfos -t "$OUT/$1" | sed -n 's/^File type: *//p')
    case "$t" in *"$2"*) printf '    ok    file type %s\n' "$t" ;;
        *) printf '    FAIL  file type %s, want %s\n' "$t" "$2"; FAILS=$((FAILS + 1)) ;; esac
}

summary() {
    local f=$1
    printf '\n--- %s  (%s bytes)\n' "$f" "$(stat -c %s "$OUT/$f")"
    tshark -r "$OUT/$f" -q -z conv,tcp 2>/dev/null | sed -n '/<->/p' | sed 's/^/    conv /'
    tshark -r "$OUT/$f" -Y smtp -T fields -e tcp.srcport -e smtp.req.command -e smtp.req.parameter \
        -e smtp.response.code -e smtp.rsp.parameter 2>/dev/null \
        | awk -F'\t' '$2 == "" && $4 == "" { next }
                       { c = ($2 != "") ? "C: " $2 " " $3 : "S: " $4 " " $5;
                         gsub(/,/, " | ", c); print "    " substr(c, 1, 110) }' \
        | LC_ALL=C tr '\000-\010\013-\037\177' '?' | head -40   # no raw escapes to the terminal
}

verify_all() {
    log "verification (tshark)"
    local T='tcp.port==25'
    local f
    f=smtp-plain.pcap; summary $f
    check_encap $f "Ethernet"; check_type $f "pcap"
    check $f "one TCP connection" "tcp.flags.syn==1 && tcp.flags.ack==0" -eq 1
    check $f "EHLO" 'smtp.req.command=="EHLO"' -ge 1
    check $f "DATA" 'smtp.req.command=="DATA"' -ge 1
    check $f "QUIT" 'smtp.req.command=="QUIT"' -ge 1
    check $f "no STARTTLS offered" 'smtp.rsp.parameter contains "STARTTLS"' -eq 0

    f=smtp-starttls-tls12.pcap; summary $f
    check $f "STARTTLS offered" 'smtp.rsp.parameter contains "STARTTLS"' -ge 1
    check $f "STARTTLS sent" 'smtp.req && frame contains "STARTTLS\x0d\x0a"' -eq 1
    check $f "220 to STARTTLS" 'smtp.response.code==220' -ge 2
    check $f "ServerHello TLS 1.2" 'tls.handshake.type==2 && tls.handshake.version==0x0303 && !tls.handshake.extensions.supported_version' -eq 1
    check $f "Certificate visible" 'tls.handshake.type==11' -eq 1
    check $f "SNI mx.example.test" 'tls.handshake.extensions_server_name=="mx.example.test"' -eq 1

    f=smtp-starttls-tls13.pcap; summary $f
    check $f "STARTTLS sent" 'smtp.req && frame contains "STARTTLS\x0d\x0a"' -eq 1
    check $f "ServerHello TLS 1.3" 'tls.handshake.type==2 && tls.handshake.extensions.supported_version==0x0304' -eq 1
    check $f "no cleartext Certificate" 'tls.handshake.type==11' -eq 0

    f=smtp-helo.pcap; summary $f
    check $f "HELO" 'smtp.req.command=="HELO"' -eq 1
    check $f "no EHLO" 'smtp.req.command=="EHLO"' -eq 0
    check $f "DATA" 'smtp.req.command=="DATA"' -eq 1

    f=smtp-starttls-refused-454.pcap; summary $f
    check $f "STARTTLS offered" 'smtp.rsp.parameter contains "STARTTLS"' -ge 1
    check $f "STARTTLS sent" 'smtp.req && frame contains "STARTTLS\x0d\x0a"' -eq 1
    check $f "454 reply" 'smtp.response.code==454' -eq 1
    check $f "mail sent in plaintext (DATA)" 'smtp.req.command=="DATA"' -eq 1
    check $f "no TLS" 'tls' -eq 0

    f=smtp-starttls-stripped.pcap; summary $f
    check $f "XXXXXXXA in EHLO reply" 'smtp.rsp.parameter contains "XXXXXXXA"' -eq 1
    check $f "no STARTTLS anywhere" 'frame contains "STARTTLS"' -eq 0
    check $f "mail sent in plaintext (DATA)" 'smtp.req.command=="DATA"' -eq 1
    check $f "only the client leg" "ip.addr==$TLSMX" -eq 0

    f=smtp-pipelining.pcap; summary $f
    check $f "PIPELINING offered" 'smtp.rsp.parameter contains "PIPELINING"' -ge 1
    check $f "MAIL+RCPT in one segment" 'frame contains "MAIL FROM" && frame contains "RCPT TO"' -ge 1
    check $f "two RCPT" 'smtp.req.command=="RCPT"' -ge 1

    f=smtp-bdat.pcap; summary $f
    check $f "CHUNKING offered" 'smtp.rsp.parameter contains "CHUNKING"' -ge 1
    check $f "BDAT ... LAST" 'frame contains "BDAT" && frame contains " LAST"' -ge 1
    check $f "no DATA" 'smtp.req.command=="DATA"' -eq 0
    check $f "BDAT accepted (250 x>=5)" 'smtp.response.code==250' -ge 5

    for f in smtp-auth-plaintext.pcap smtp-auth-login.pcap; do
        summary $f
        check $f "AUTH offered" 'smtp.rsp.parameter contains "AUTH"' -ge 1
        check $f "AUTH sent" 'smtp.req.command=="AUTH"' -eq 1
        check $f "235 authenticated" 'smtp.response.code==235' -eq 1
        check $f "no TLS" 'tls' -eq 0
    done

    f=smtp-ipv6.pcap; summary $f
    check $f "IPv6 only" 'ip' -eq 0
    check $f "IPv6 SMTP" "ipv6 && $T" -ge 10
    check $f "Certificate (TLS 1.2)" 'tls.handshake.type==11' -eq 1

    f=smtp-vlan.pcap; summary $f
    check $f "802.1Q VID 100 on every TCP frame" "tcp && !(vlan.id==100)" -eq 0
    check $f "tagged SMTP" "vlan.id==100 && $T" -ge 10
    check $f "DATA" 'smtp.req.command=="DATA"' -eq 1
    f=smtp-qinq.pcap; summary $f
    check $f "802.1ad S-VID 200 + 802.1Q C-VID 100" "tcp && !(ieee8021ad.id==200 && vlan.id==100)" -eq 0
    check $f "double-tagged SMTP" "ieee8021ad.id==200 && $T" -ge 10
    check $f "DATA" 'smtp.req.command=="DATA"' -eq 1

    f=smtp-injection.pcap; summary $f
    check $f "STARTTLS + injected MAIL in one segment" 'frame contains "STARTTLS\x0d\x0aMAIL FROM:<attacker@evil.test>"' -eq 1
    check $f "TLS handshake after it" 'tls.handshake.type==2' -eq 1

    f=smtp-sll.pcap; summary $f
    check_encap $f "Linux cooked-mode capture v1"
    check $f "DATA" 'smtp.req.command=="DATA"' -eq 1
    f=smtp-sll2.pcap; summary $f
    check_encap $f "Linux cooked-mode capture v2"
    check $f "DATA" 'smtp.req.command=="DATA"' -eq 1

    for f in smtp-mta-relay.pcap smtp-mta-relay-tls12-anon.pcap smtp-mta-relay-tls12.pcap; do
        summary $f
        check $f "EHLO relay.sender.test" 'smtp.req.parameter=="relay.sender.test"' -ge 1
        check $f "STARTTLS sent" 'smtp.req && frame contains "STARTTLS\x0d\x0a"' -eq 1
        check $f "SNI mx.example.test" 'tls.handshake.extensions_server_name=="mx.example.test"' -eq 1
    done
    check smtp-mta-relay.pcap "TLS 1.3" 'tls.handshake.extensions.supported_version==0x0304 && tls.handshake.type==2' -eq 1
    check smtp-mta-relay-tls12.pcap "Certificate (TLS 1.2)" 'tls.handshake.type==11' -eq 1
    check smtp-mta-relay-tls12-anon.pcap "anonymous suite (ADH), no Certificate" 'tls.handshake.type==2 && tls.handshake.ciphersuite==0x00a7' -eq 1
    check smtp-mta-relay-tls12-anon.pcap "no Certificate" 'tls.handshake.type==11' -eq 0

    f=smtp-tls-failed-fallback.pcap; summary $f
    check $f "two connections" "tcp.flags.syn==1 && tcp.flags.ack==0" -eq 2
    check $f "STARTTLS sent once" 'smtp.req && frame contains "STARTTLS\x0d\x0a"' -eq 1
    check $f "TLS alert" 'tls.alert_message' -ge 1
    check $f "plaintext retry with DATA" 'smtp.req.command=="DATA"' -eq 1

    f=smtp-port2525.pcap; summary $f
    check $f "SMTP bytes on port 2525" 'tcp.port==2525 && frame contains "EHLO"' -eq 1
    check $f "nothing on port 25" "$T" -eq 0

    f=nonsmtp-mixed.pcap; summary $f
    check $f "HTTP GET" 'http.request.method=="GET"' -eq 1
    check $f "DNS over UDP (MX answer)" 'udp && dns.flags.response==1 && dns.resp.type==15' -ge 1
    check $f "DNS over TCP (TLSA answer)" 'tcp && dns.flags.response==1 && dns.resp.type==52' -ge 1
    check $f "TLS on 443 with Certificate" 'tcp.port==443 && tls.handshake.type==11' -eq 1
    check $f "no SMTP" 'smtp' -eq 0

    f=smtp-multi.pcapng; summary $f
    check_type $f "pcapng"
    check $f "two connections" "tcp.flags.syn==1 && tcp.flags.ack==0" -eq 2
    check $f "one STARTTLS" 'smtp.req && frame contains "STARTTLS\x0d\x0a"' -eq 1
}

check_leaf() {   # check_leaf CAPTURE PEM: the first certificate on the wire is certs/PEM
    local got want
    got=$(tshark -r "$OUT/$1" -Y 'tls.handshake.type==11' -T fields -e tls.handshake.certificate 2>/dev/null \
           | head -1 | cut -d, -f1 \
           | "$PY" -c 'import sys, hashlib; print(hashlib.sha256(bytes.fromhex(sys.stdin.read().strip().replace(":", ""))).hexdigest())')
    want=$(openssl x509 -in "$OUT/certs/$2" -outform DER | sha256sum | cut -d' ' -f1)
    if [ "$got" = "$want" ]; then printf '    ok    leaf on the wire is certs/%s\n' "$2"
    else printf '    FAIL  leaf on the wire is not certs/%s (%s)\n' "$2" "$got"; FAILS=$((FAILS + 1)); fi
}

verify_ca2() {   # verify_ca2 CAPTURE LEAF_PEM
    local f=$1
    summary $f
    check $f "one TCP connection" "tcp.flags.syn==1 && tcp.flags.ack==0" -eq 1
    check $f "EHLO client.sender.test" 'smtp.req.parameter=="client.sender.test"' -ge 1
    check $f "STARTTLS offered" 'smtp.rsp.parameter contains "STARTTLS"' -ge 1
    check $f "STARTTLS sent" 'smtp.req && frame contains "STARTTLS\x0d\x0a"' -eq 1
    check $f "ServerHello TLS 1.2" 'tls.handshake.type==2 && tls.handshake.version==0x0303 && !tls.handshake.extensions.supported_version' -eq 1
    check $f "SNI mx.example.test" 'tls.handshake.extensions_server_name=="mx.example.test"' -eq 1
    check $f "Certificate visible" 'tls.handshake.certificate' -eq 1
    check $f "no TLS alert in the clear" 'tls.alert_message.level' -eq 0
    check $f "mail sent inside TLS" 'tls.app_data' -ge 4
    check $f "no cleartext DATA" 'smtp.req.command=="DATA"' -eq 0
    check_leaf $f "$2"
}

# the client's bytes are the point of this capture; the reply checks pin down
# what Postfix 3.7 answered, as pcaps/README.md describes it
verify_hostile() {
    local f=smtp-hostile-ehlo.pcap
    local C="tcp.dstport==25" S="tcp.srcport==25"
    # the HELO/EHLO name as sent: evil CR name ESC[31m "quoted" \back DEL del 0x01 ctl, CRLF
    local name=65:76:69:6c:0d:6e:61:6d:65:1b:5b:33:31:6d:22:71:75:6f:74:65:64:22:5c:62:61:63:6b:7f:64:65:6c:01:63:74:6c:0d:0a
    local auth; auth=$(printf '\0alice@example.test\0Secret-Passw0rd' | base64 -w0)
    summary $f
    check $f "one TCP connection" "tcp.flags.syn==1 && tcp.flags.ack==0" -eq 1
    check $f "ESC [31m from the client" "$C && frame contains 1b:5b:33:31:6d" -eq 1
    check $f "EHLO + name (bare CR, ESC, DEL, 0x01), one segment" "$C && tcp.payload[0:5]==45:48:4c:4f:20 && tcp.payload contains $name" -eq 1
    check $f "EHLO accepted (250, AUTH PLAIN offered)" "$S && smtp.rsp.parameter contains \"AUTH PLAIN\"" -eq 1
    check $f "no HELO fallback needed" "$C && tcp.payload[0:5]==48:45:4c:4f:20" -eq 0
    check $f "AUTH PLAIN in the clear" "$C && frame contains \"AUTH PLAIN $auth\\x0d\\x0a\"" -eq 1
    check $f "235 to AUTH" 'smtp.response.code==235' -eq 1
    check $f "MAIL FROM" "$C && frame contains \"MAIL FROM:<a@sender.test>\\x0d\\x0a\"" -eq 1
    check $f "RCPT bob@example.test" "$C && frame contains \"RCPT TO:<bob@example.test>\\x0d\\x0a\"" -eq 1
    check $f "RCPT with OSC escape (ESC ]0;pwn BEL)" "$C && frame contains 1b:5d:30:3b:70:77:6e:07" -eq 1
    check $f "501 to the OSC RCPT" 'smtp.response.code==501' -eq 1
    check $f "QUIT" "$C && frame contains \"QUIT\\x0d\\x0a\"" -eq 1
    check $f "each command its own segment (6)" "$C && tcp.len>0" -eq 6
    check $f "server echoes no ESC, BEL, DEL, 0x01, bare CR" "$S && (tcp.payload contains 1b || tcp.payload contains 07 || tcp.payload contains 7f || tcp.payload contains 01 || tcp.payload contains 0d:6e)" -eq 0
    check $f "no TLS" 'tls' -eq 0
}

# check_conns FILE N: N connections opened; check_tls13 FILE N: N TLS 1.3 ServerHellos
check_conns() { check "$1" "$2 TCP connection(s)" "tcp.flags.syn==1 && tcp.flags.ack==0" -eq "$2"; }
check_tls13() { check "$1" "TLS 1.3 ($2)" "tls.handshake.type==2 && tls.handshake.extensions.supported_version==0x0304" -eq "$2"; }

verify_exim() {
    local f=smtp-exim-early-pipe.pcap t=smtp-exim-early-pipe-tls.pcap
    local C="tcp.dstport==25" S="tcp.srcport==25"
    summary $f
    check_conns $f 2
    check $f "PIPECONNECT advertised (both EHLO replies)" "$S && smtp.rsp.parameter == \"PIPECONNECT\"" -eq 2
    check $f "STARTTLS advertised (both EHLO replies)" "$S && smtp.rsp.parameter == \"STARTTLS\"" -eq 2
    check $f "EHLO, MAIL, RCPT, BDAT sent before any server byte (early pipelining)" "tcp.stream==1 && $C && tcp.seq==1 && tcp.ack==1 && frame contains \"EHLO \" && frame contains \"MAIL FROM\" && frame contains \"BDAT \"" -eq 1
    check $f "no STARTTLS requested, no TLS" "tls || ($C && frame contains \"STARTTLS\\x0d\\x0a\")" -eq 0
    summary $t
    check_conns $t 2
    check $t "EHLO and STARTTLS sent before any server byte (second connection)" "tcp.stream==1 && $C && tcp.seq==1 && tcp.ack==1 && frame contains \"EHLO \" && frame contains \"STARTTLS\"" -eq 1
    check_tls13 $t 2
    check $t "no cleartext Certificate" 'tls.handshake.type==11' -eq 0
    # the client's key log, written by GnuTLS (SSLKEYLOGFILE kept by Exim)
    check_keylog $t 2
    kcheck $t "decrypted: Certificate (both sessions)" 'tls.handshake.type==11' -eq 2
    check_chain_each $t "$WORK/exim/srv/cert.pem" "the Exim server's (self-signed, mx.example.test)"
    # GnuTLS logs every secret, the traffic secrets too: the mail decrypts
    # (tshark 4.0 shows the pipelined MAIL/RCPT/BDAT as a "DATA fragment")
    kcheck $t "decrypted: 250 Accepted to RCPT (both sessions)" 'tls && smtp.rsp.parameter == "Accepted"' -eq 2
    kcheck $t "decrypted: 250 to BDAT LAST (both sessions)" 'tls && smtp.rsp.parameter contains "byte chunk"' -eq 2
}

verify_opensmtpd() {
    local f=smtp-opensmtpd-fallback.pcap t=smtp-opensmtpd-to-postfix.pcap C="tcp.dstport==25"
    summary $f
    check_conns $f 2
    check $f "STARTTLS accepted (220) on the first" "tcp.stream==0 && smtp.response.code==220 && smtp.rsp.parameter contains \"Ready to start TLS\"" -eq 1
    check $f "a TLS handshake on the first connection" "tcp.stream==0 && tls.handshake.type==1" -eq 1
    check $f "plaintext retry: MAIL FROM on the second connection" "tcp.stream==1 && $C && frame contains \"MAIL FROM:\"" -eq 1
    check $f "no STARTTLS on the second connection" "tcp.stream==1 && $C && frame contains \"STARTTLS\"" -eq 0
    summary $t
    check_conns $t 1
    check_tls13 $t 1
}

# The TLS 1.3 key-log captures: decrypted with their own key log, each holds
# the server's whole handshake flight with certs/mx-tls13 then certs/ca3.
# kcheck: check with tshark reading FILE's key log (FILE.keys)
kcheck() { CHECK_KEYLOG="$OUT/${1%.pcap}.keys" check "$@"; }

check_chain() {   # check_chain CAPTURE PEM...: the Certificate message, decrypted, holds these
    local f=$1 got want; shift
    got=$(tshark -r "$OUT/$f" -o "tls.keylog_file:$OUT/${f%.pcap}.keys" -Y tls.handshake.certificate \
              -T fields -e tls.handshake.certificate 2>/dev/null |
          "$PY" -c 'import sys, hashlib
for line in sys.stdin:
    for c in line.strip().split(","):
        if c:
            print(hashlib.sha256(bytes.fromhex(c.replace(":", ""))).hexdigest())')
    want=$(for p in "$@"; do openssl x509 -in "$OUT/certs/$p" -outform DER | sha256sum | cut -d' ' -f1; done)
    if [ -n "$got" ] && [ "$got" = "$want" ]; then
        printf '    ok    decrypted Certificate message is certs/%s\n' "$*"
    else
        printf '    FAIL  decrypted Certificate message is not certs/%s (got: %s)\n' "$*" "$(echo $got)"
        FAILS=$((FAILS + 1))
    fi
}

check_keylog() {   # check_keylog CAPTURE [N]: N client randoms (default 1), a SERVER_HANDSHAKE_TRAFFIC_SECRET for each
    local f=$1 want=${2:-1} k="$OUT/${1%.pcap}.keys" r n=0 bad=0
    for r in $(tshark -r "$OUT/$f" -Y 'tls.handshake.type==1' -T fields -e tls.handshake.random 2>/dev/null |
               tr -d : | sort -u); do
        n=$((n + 1))
        grep -qi "^SERVER_HANDSHAKE_TRAFFIC_SECRET $r " "$k" || bad=1
    done
    if [ $n -eq "$want" ] && [ $bad = 0 ]; then
        printf '    ok    %s: SERVER_HANDSHAKE_TRAFFIC_SECRET for each client random (%s)\n' "${k##*/}" $n
    else
        printf '    FAIL  %s: not a SERVER_HANDSHAKE_TRAFFIC_SECRET for each client random (%s randoms, want %s)\n' "${k##*/}" $n "$want"
        FAILS=$((FAILS + 1))
    fi
}

# check_chain_each CAPTURE LEAF_PEM NAME: decrypted with CAPTURE's key log,
# tshark's tls.handshake.certificate gives a chain in every TLS session (each
# TCP stream with a ServerHello), its first certificate LEAF_PEM (a path)
check_chain_each() {
    local f=$1 leaf=$2 name=$3 want streams got
    want=$(openssl x509 -in "$leaf" -outform DER | sha256sum | cut -d' ' -f1)
    streams=$(tshark -r "$OUT/$f" -Y 'tls.handshake.type==2' -T fields -e tcp.stream 2>/dev/null | sort -un)
    got=$(tshark -r "$OUT/$f" -o "tls.keylog_file:$OUT/${f%.pcap}.keys" -Y tls.handshake.certificate \
              -T fields -E separator='|' -e tcp.stream -e tls.handshake.certificate 2>/dev/null |
          "$PY" -c 'import sys, hashlib
for line in sys.stdin:
    stream, certs = line.rstrip("\n").split("|", 1)
    certs = [c for c in certs.split(",") if c]
    if certs:
        print(stream, hashlib.sha256(bytes.fromhex(certs[0].replace(":", ""))).hexdigest(), len(certs))')
    local s bad=0 n=0
    for s in $streams; do
        n=$((n + 1))
        printf '%s\n' "$got" | grep -q "^$s $want " || bad=1
    done
    if [ $n -gt 0 ] && [ $bad = 0 ]; then
        printf '    ok    decrypted Certificate in each of the %s TLS sessions, leaf %s\n' $n "$name"
    else
        printf '    FAIL  decrypted Certificate not in each of the %s TLS sessions with leaf %s (got: %s)\n' \
            $n "$name" "$(echo $got)"
        FAILS=$((FAILS + 1))
    fi
}

verify_tls13_keylog() {
    local f spec suite hrr ehlo
    # HRR's fixed random, SHA-256("HelloRetryRequest") (RFC 8446, 4.1.3)
    local hrr_random=cf:21:ad:74:e5:9a:61:11:be:1d:8c:02:1e:65:b8:91:c2:a2:11:16:7a:bb:8c:5e:07:9e:09:e2:c8:a8:33:9c
    for spec in aes128:0x1301:no aes256:0x1302:no chacha20:0x1303:no hrr:0x1302:yes postfix:0x1302:no; do
        IFS=: read -r f suite hrr <<< "$spec"
        f=smtp-tls13-$f.pcap
        ehlo=client.sender.test
        case $f in
            *chacha20*) ehlo=$TLS13MX ;;   # gnutls-cli's first EHLO names the host it was given
            *postfix*)  ehlo=relay.sender.test ;;
        esac
        summary $f
        check_conns $f 1
        check $f "EHLO $ehlo" "smtp.req.parameter==\"$ehlo\"" -eq 1
        check $f "STARTTLS sent" 'smtp.req && frame contains "STARTTLS\x0d\x0a"' -eq 1
        check $f "SNI mx.example.test" 'tls.handshake.extensions_server_name=="mx.example.test"' -ge 1
        check $f "ServerHello TLS 1.3, suite $suite" "tls.handshake.type==2 && tls.handshake.extensions.supported_version==0x0304 && tls.handshake.ciphersuite==$suite && !(tls.handshake.random==$hrr_random)" -eq 1
        check $f "no cleartext Certificate" 'tls.handshake.type==11' -eq 0
        if [ "$hrr" = yes ]; then
            check $f "two ClientHellos" 'tls.handshake.type==1' -eq 2
            check $f "HelloRetryRequest (X25519 asked for)" "tls.handshake.type==2 && tls.handshake.random==$hrr_random && tls.handshake.extensions_key_share_selected_group==29" -eq 1
            check $f "first key share P-384" 'tls.handshake.type==1 && tls.handshake.extensions_key_share_group==24 && !(tls.handshake.extensions_key_share_group==29)' -eq 1
        else
            check $f "one ClientHello, no HelloRetryRequest" "tls.handshake.type==1 || tls.handshake.random==$hrr_random" -eq 1
        fi
        check_keylog $f
        kcheck $f "decrypted: EncryptedExtensions" 'tls.handshake.type==8' -eq 1
        kcheck $f "decrypted: Certificate" 'tls.handshake.type==11' -eq 1
        kcheck $f "decrypted: CertificateVerify" 'tls.handshake.type==15' -eq 1
        kcheck $f "decrypted: both Finished" 'tls.handshake.type==20' -eq 2
        check_chain $f mx-tls13.example.test.pem ca3.example.test.pem
        if [ "$f" = smtp-tls13-postfix.pcap ]; then
            # the shim's default: handshake secrets only, so the mail stays sealed
            kcheck $f "mail not decryptable (no traffic secrets)" 'smtp.req.command=="RCPT"' -eq 0
            if grep -qv '^\(CLIENT\|SERVER\)_HANDSHAKE_TRAFFIC_SECRET ' "$OUT/${f%.pcap}.keys"; then
                printf '    FAIL  the shim wrote more than the handshake secrets\n'; FAILS=$((FAILS + 1))
            else
                printf '    ok    the shim wrote the two handshake secrets only\n'
            fi
        else
            kcheck $f "decrypted: RCPT TO:<bob@example.test>" 'smtp.req.parameter contains "<bob@example.test>"' -eq 1
            kcheck $f "decrypted: 354 to DATA, 250 queued, 221 to QUIT" 'smtp.response.code==354 || smtp.rsp.parameter contains "queued as" || smtp.response.code==221' -eq 3
        fi
    done
}

# ---------------------------------------------------------------- main
main() {
    select_scenarios "$@"
    [ "$(id -u)" = 0 ] || die "must run as root (network namespaces, tcpdump, Postfix)"
    log "scenarios: ${SELECTED[*]}"
    install_packages
    command -v "$PY" >/dev/null || die "$PY missing"
    # leftovers of an interrupted earlier run (only our own namespaces)
    teardown_net
    WORK=$(mktemp -d /tmp/mxwatch-captures.XXXXXX)
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    chmod 755 "$WORK"
    setup_net
    if want base; then
        # rewrites certs/ca, mx, www and fingerprints.txt, then every base capture
        setup_vlan_lab
        # make_certs rewrites fingerprints.txt: keep the lines of the other CAs
        # (a CA rebuilt below replaces its own lines)
        local fp="$OUT/certs/fingerprints.txt" keep=""
        [ -f "$fp" ] && keep=$(grep -Ev '^#|^(ca|mx|www)\.example\.test\.pem ' "$fp" || true)
        make_certs
        if [ -n "$keep" ]; then printf '%s\n' "$keep" >> "$fp"; fi
        make_body
        setup_postfix
        capture_all
    fi
    if want_ca2; then
        make_certs_ca2          # after make_certs: it adds its lines to fingerprints.txt
        setup_postfix_ca2
        capture_expired
        capture_wrongname
    fi
    if want smtp-hostile-ehlo; then
        want base || setup_postfix_auth_alone   # base has started "auth" already
        capture_hostile_ehlo
    fi
    if want smtp-exim-early-pipe; then
        setup_exim
        capture_exim
    fi
    if want smtp-opensmtpd; then
        setup_opensmtpd
        capture_opensmtpd
    fi
    if want smtp-tls13-keylog; then
        make_certs_ca3          # after make_certs: it adds its lines to fingerprints.txt
        setup_tls13_keylog
        capture_tls13_keylog
    fi
    want base && verify_all
    if want_ca2; then
        log "verification (tshark), CA2 captures"
        verify_ca2 smtp-starttls-expired-cert.pcap mx-expired.example.test.pem
        verify_ca2 smtp-starttls-wrongname-cert.pcap wrongname.example.org.pem
    fi
    if want smtp-hostile-ehlo; then
        log "verification (tshark), hostile client bytes"
        verify_hostile
    fi
    if want smtp-exim-early-pipe; then
        log "verification (tshark), Exim early pipelining"
        verify_exim
    fi
    if want smtp-opensmtpd; then
        log "verification (tshark), OpenSMTPD"
        verify_opensmtpd
    fi
    if want smtp-tls13-keylog; then
        log "verification (tshark), TLS 1.3 decrypted with the clients' key logs"
        verify_tls13_keylog
    fi

    log "made in $OUT:"
    local f
    for f in "${MADE[@]}"; do printf '  %8s  %s\n' "$(stat -c %s "$OUT/$f")" "$f"; done
    printf '  certs/: %s\n' "$(cd "$OUT/certs" && echo *)"
    if [ "$FAILS" -ne 0 ]; then
        echo "make-captures: $FAILS verification check(s) FAILED (KEEP_WORK=1 keeps the logs)" >&2
        return 1
    fi
    echo "all verification checks passed"
}

main "$@"
