# postfix.sh - private Postfix instances for the capture script and the
# tests (sourced, not run). Each instance lives in a folder of its own, runs
# nothing chrooted, looks nothing up in DNS, delivers nothing anywhere
# (mail for its relay domain is discarded) and leaves the system's Postfix
# alone.
#
#   pf_instance DIR NAME HOSTNAME DOMAIN INET_INTERFACES INET_PROTOCOLS MYNETWORKS
#       writes DIR/etc/main.cf and master.cf; main.cf lines on stdin replace
#       the defaults of the same keys
#   pf_listening NETNS_PREFIX ADDRESS [PORT]   waits up to 10 s for the listener

pf_write_master_cf() { # FILE
	cat >"$1" <<'MASTER'
# service type  private unpriv  chroot  wakeup  maxproc command + args
smtp      inet  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
MASTER
}

pf_instance() { # DIR NAME HOSTNAME DOMAIN INET_INTERFACES INET_PROTOCOLS MYNETWORKS
	local d=$1 name=$2 host=$3 domain=$4 ifaces=$5 protocols=$6 networks=$7
	mkdir -p "$d/etc" "$d/queue" "$d/data"
	chown postfix:postfix "$d/data"
	cat >"$d/etc/main.cf" <<MAIN
# private Postfix instance "$name" (pcaps/tools/postfix.sh)
compatibility_level = 3.6
queue_directory = $d/queue
data_directory = $d/data
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
maillog_file = $d/maillog
maillog_file_prefixes = $(dirname "$d")
myhostname = $host
mydomain = $domain
myorigin = \$myhostname
smtpd_banner = \$myhostname ESMTP Postfix
inet_interfaces = $ifaces
inet_protocols = $protocols
mynetworks = $networks
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
biff = no
# accept mail for $domain and throw it away; nothing is ever sent on
relay_domains = $domain
relay_transport = discard:delivered to the bit bucket
default_transport = error:this test instance sends no mail out
local_transport = error:no local delivery
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
# no DNS whatsoever
disable_dns_lookups = yes
smtp_dns_support_level = disabled
smtp_host_lookup = native
smtpd_peername_lookup = no
MAIN
	# instance-specific settings (stdin) replace the defaults above
	local extra k
	extra=$(cat)
	for k in $(printf '%s\n' "$extra" | sed -n 's/^\([a-z0-9_]*\) *=.*/\1/p'); do
		sed -i "/^$k *=/d" "$d/etc/main.cf"
	done
	printf '%s\n' "$extra" >>"$d/etc/main.cf"
	pf_write_master_cf "$d/etc/master.cf"
}

pf_listening() { # NETNS ADDRESS [PORT]: 0 once something listens there
	local ns=$1 addr=$2 port=${3:-25}
	for _ in $(seq 100); do
		ip netns exec "$ns" ss -Hltn "sport = :$port" | grep -q "$addr:$port" && return 0
		sleep 0.1
	done
	return 1
}
