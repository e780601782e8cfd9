#!/usr/bin/env bash
# `mxwatch report --send` against real receivers on loopback: nginx (HTTPS
# with a test CA) takes the POSTs and hands them to a small recorder behind
# it; a private Postfix instance delivers the mailto: reports into a mailbox
# file. Every report received is decompressed and checked against RFC
# 8460's JSON structure, and its counts against the stored sessions
# (computed here with SQL); the mailed copy must be the posted report byte
# for byte, with 5.3's headers and attachment name. A second --send sends
# nothing; a destination that failed (HTTP 503) is tried again next time
# and then delivered; a redirect is a failure, not followed; an untrusted
# certificate is a failure. A domain with both MTA-STS and DANE lists both
# policies; one with none gets no-policy-found, successful counts only for
# TLS sessions. Only the configured senders' sessions count. Needs root
# (Postfix's queue); leaves nothing running. Ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
M=$(pwd)/mxwatch
. tests/lib.sh

skip() { echo "skip: TLS-RPT delivery test: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "needs root (a Postfix queue, nginx)"
for t in nginx postfix openssl python3 sqlite3; do
	command -v $t >/dev/null || skip "$t is not installed"
done

T=$(mktemp -d /tmp/mxwatch-tlsrpt.XXXXXX)
chmod 755 "$T"
WEB=127.0.1.20
NGINX_PID=
REC_PID=
cleanup() {
	[ -n "$NGINX_PID" ] && kill "$NGINX_PID" 2>/dev/null && wait "$NGINX_PID" 2>/dev/null
	[ -n "$REC_PID" ] && kill "$REC_PID" 2>/dev/null && wait "$REC_PID" 2>/dev/null
	[ -d "$T/pf/etc" ] && postfix -c "$T/pf/etc" stop >/dev/null 2>&1
	sleep 0.2
	pkill -f "$T/pf" 2>/dev/null
	[ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT

# --- a test CA and a server certificate for the address
mkdir -p "$T/pki"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	-subj "/CN=mxwatch tlsrpt test CA" -keyout "$T/pki/ca.key" -out "$T/pki/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$WEB" \
	-keyout "$T/pki/web.key" -out "$T/pki/web.csr" 2>/dev/null
printf 'subjectAltName = IP:%s\nextendedKeyUsage = serverAuth\n' "$WEB" >"$T/pki/web.ext"
openssl x509 -req -in "$T/pki/web.csr" -CA "$T/pki/ca.pem" -CAkey "$T/pki/ca.key" \
	-CAcreateserial -days 2 -extfile "$T/pki/web.ext" -out "$T/pki/web.pem" 2>/dev/null
check "test CA and server certificate made" test -s "$T/pki/web.pem"

# --- the recorder: saves every POST (headers and body); /flaky answers 503
# until the test says otherwise
mkdir -p "$T/posts"
cat >"$T/recorder.py" <<'EOF'
import http.server, json, os, sys
d = sys.argv[1]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path == "/flaky" and not os.path.exists(os.path.join(d, "flaky.ok")):
            self.send_response(503); self.end_headers(); return
        n = len(os.listdir(os.path.join(d, "posts"))) // 2
        with open(os.path.join(d, "posts", "%04d.body" % n), "wb") as f:
            f.write(body)
        with open(os.path.join(d, "posts", "%04d.json" % n), "w") as f:
            json.dump({"path": self.path, "headers": dict(self.headers)}, f)
        self.send_response(200); self.end_headers()
    def log_message(self, *a): pass
http.server.HTTPServer((sys.argv[2], 8080), H).serve_forever()
EOF
python3 "$T/recorder.py" "$T" "$WEB" &
REC_PID=$!
mkdir -p "$T/nginx-tmp"
cat >"$T/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $T/nginx.pid;
error_log $T/nginx-error.log info;
events { worker_connections 64; }
http {
    access_log $T/nginx-access.log;
    client_body_temp_path $T/nginx-tmp/body;
    proxy_temp_path $T/nginx-tmp/proxy;
    fastcgi_temp_path $T/nginx-tmp/fastcgi;
    uwsgi_temp_path $T/nginx-tmp/uwsgi;
    scgi_temp_path $T/nginx-tmp/scgi;
    server {
        listen $WEB:8443 ssl;
        ssl_certificate $T/pki/web.pem;
        ssl_certificate_key $T/pki/web.key;
        location = /moved { return 301 https://$WEB:8443/ok; }
        location / { proxy_pass http://$WEB:8080; }
    }
}
EOF
nginx -c "$T/nginx.conf" &
NGINX_PID=$!
for _ in $(seq 50); do
	ss -Hltn "sport = :8443" | grep -q "$WEB:8443" && ss -Hltn "sport = :8080" | grep -q "$WEB:8080" && break
	sleep 0.1
done
check "nginx (HTTPS) and the recorder behind it listening on $WEB" \
	curl -sf --cacert "$T/pki/ca.pem" -X POST --data x "https://$WEB:8443/ok" -o /dev/null
rm -f "$T"/posts/*

# --- a private Postfix delivering report.test's mail into one mailbox file
. pcaps/tools/postfix.sh
mkdir -p "$T/mail"
chown nobody:nogroup "$T/mail"
pf_instance "$T/pf" tlsrpt mail.sender.test sender.test loopback-only ipv4 127.0.0.0/8 <<EOF
virtual_mailbox_domains = report.test
virtual_mailbox_base = $T/mail
virtual_mailbox_maps = inline:{ tlsrpt@report.test=reports.mbox }
virtual_uid_maps = static:$(id -u nobody)
virtual_gid_maps = static:$(id -g nobody)
virtual_minimum_uid = 1
virtual_transport = virtual
EOF
sed -i '/^smtp      inet/d' "$T/pf/etc/master.cf" # no listener: sendmail only
echo "virtual   unix  -       n       n       -       -       virtual" >>"$T/pf/etc/master.cf"
postfix -c "$T/pf/etc" start >"$T/pf/start.log" 2>&1
check "private Postfix started (no listener, mail for report.test into a file)" \
	postfix -c "$T/pf/etc" status

# --- stored sessions: the bundled captures against the demo policy (both
# MTA-STS and DANE for example.test), and against no policy at all
caps=$(ls pcaps/*.pcap | sort)
for db in both none; do
	[ $db = both ] && "$M" policy import --db "$T/$db.db" etc/demo.policy >/dev/null
	cat >"$T/rua.policy" <<EOF
tlsrpt example.test rua=https://$WEB:8443/ok,mailto:tlsrpt@report.test,https://$WEB:8443/flaky
EOF
	"$M" policy import --db "$T/$db.db" "$T/rua.policy" >/dev/null
	"$M" analyze -q --db "$T/$db.db" --config etc/demo.conf $caps 2>/dev/null
done
cat >"$T/report.conf" <<EOF
[report]
senders = 127.0.0.0/8, fd6d:7877::/32
org = Sender Test Org
contact = tls-reports@sender.test
from = tlsrpt-sender@sender.test
submitter = mail.sender.test
sendmail = /usr/sbin/sendmail -C $T/pf/etc
EOF
send() { # DB [more options]
	local db=$1
	shift
	"$M" report --send --config "$T/report.conf" --ca-bundle "$T/pki/ca.pem" --timeout 10 \
		--from 2000-01-01 --db "$T/$db.db" "$@"
}
# Days that are over, with sessions of the senders for example.test
# (sqlite3, not mxwatch, says which).
days() {
	sqlite3 "$T/$1.db" "SELECT DISTINCT s.ts_start / 86400 * 86400 FROM sessions s
		JOIN session_domains d ON d.session_id = s.id AND d.domain = 'example.test'
		WHERE s.ts_start < strftime('%s', 'now') / 86400 * 86400
		AND (s.client_ip LIKE '127.%' OR s.client_ip LIKE 'fd6d:7877:%') ORDER BY 1"
}
ndays=$(days both | wc -l)
check "captures span $ndays days that are over" test "$ndays" -ge 1

# Without --from, only the last 3 days go (not every day ever stored).
recent=$(sqlite3 "$T/both.db" "SELECT count(DISTINCT s.ts_start / 86400) FROM sessions s
	JOIN session_domains d ON d.session_id = s.id AND d.domain = 'example.test'
	WHERE s.ts_start >= (strftime('%s', 'now') / 86400 - 3) * 86400
	AND s.ts_start < strftime('%s', 'now') / 86400 * 86400")
"$M" report --send --dry-run --config "$T/report.conf" --db "$T/both.db" >"$T/dry0.out" 2>&1
check "without --from: the last 3 days only ($recent with sessions)" \
	grep -q "^$((3 * recent)) report(s) would be sent" "$T/dry0.out"
send both --dry-run >"$T/dry.out" 2>&1
check "--dry-run: 3 destinations x $ndays days would be sent" \
	grep -q "^$((3 * ndays)) report(s) would be sent, 0 already sent" "$T/dry.out"
check "--dry-run sent nothing" test -z "$(ls "$T/posts")"

send both >"$T/send1.out" 2>&1
rc=$?
check "first --send: exit 1 (the flaky destination failed)" test $rc = 1
check "first --send: $((2 * ndays)) sent, $ndays failed" \
	grep -q "^$((2 * ndays)) report(s) sent, $ndays failed (tried again at the next --send), 0 given up" "$T/send1.out"
for _ in $(seq 100); do
	[ "$(grep -c '^From ' "$T/mail/reports.mbox" 2>/dev/null)" -ge "$ndays" ] && break
	sleep 0.1
done

# Every received report checked: structure, counts against SQL, the mail
# the same report as the POST.
cat >"$T/check.py" <<'EOF'
import email, gzip, json, mailbox, os, re, sqlite3, sys
from datetime import datetime, timezone
T, db, want_types, nday = sys.argv[1], sys.argv[2], sys.argv[3].split(","), int(sys.argv[4])
nmail = int(sys.argv[5])  # mails expected: one per day, or none
fails = []
def need(cond, what):
    if not cond:
        fails.append(what)
def check_report(r, where):
    need(isinstance(r.get("organization-name"), str) and r["organization-name"] == "Sender Test Org", where + ": organization-name")
    need(r.get("contact-info") == "tls-reports@sender.test", where + ": contact-info")
    need(isinstance(r.get("report-id"), str) and r["report-id"], where + ": report-id")
    dr = r.get("date-range", {})
    try:
        a = datetime.strptime(dr["start-datetime"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
        b = datetime.strptime(dr["end-datetime"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    except Exception as e:
        fails.append(where + ": date-range %r" % dr); return
    day = int(a.timestamp())
    need(day % 86400 == 0 and int(b.timestamp()) == day + 86399, where + ": one UTC day")
    pols = r.get("policies")
    need(isinstance(pols, list) and [p["policy"]["policy-type"] for p in pols] == want_types,
         where + ": policy types %r" % [p.get("policy", {}).get("policy-type") for p in pols or []])
    c = sqlite3.connect(os.path.join(T, db + ".db"))
    ids = [row[0] for row in c.execute(
        "SELECT s.id FROM sessions s JOIN session_domains d ON d.session_id = s.id"
        " AND d.domain = 'example.test' WHERE s.ts_start >= ? AND s.ts_start < ?"
        " AND (s.client_ip LIKE '127.%' OR s.client_ip LIKE 'fd6d:7877:%')", (day, day + 86400))]
    tls = {row[0] for row in c.execute(
        "SELECT id FROM sessions WHERE tls_version IS NOT NULL AND id IN (%s)" % ",".join("?" * len(ids)), ids)}
    for p in pols or []:
        pol, summ, det = p.get("policy", {}), p.get("summary", {}), p.get("failure-details")
        kind = pol.get("policy-type")
        need(isinstance(pol.get("policy-string"), list) and all(isinstance(x, str) for x in pol["policy-string"]), where + ": policy-string")
        need(pol.get("policy-domain") == "example.test", where + ": policy-domain")
        need(isinstance(pol.get("mx-host"), list), where + ": mx-host")
        ok, bad = summ.get("total-successful-session-count"), summ.get("total-failure-session-count")
        need(isinstance(ok, int) and isinstance(bad, int), where + ": summary counts are integers")
        # failed sessions under this policy: findings with a result type;
        # DANE's count against tlsa only, MTA-STS's against sts only
        skip = "mtasts-%" if kind == "tlsa" else "dane-%"
        failed = {row[0] for row in c.execute(
            "SELECT DISTINCT session_id FROM findings WHERE rfc8460 IS NOT NULL AND domain = 'example.test'"
            " AND rule NOT LIKE ? AND session_id IN (%s)" % ",".join("?" * len(ids)), [skip] + ids)}
        need(bad == len(failed), where + ": %s failure count %r, SQL %d" % (kind, bad, len(failed)))
        need(ok == len(tls - failed), where + ": %s successful %r, SQL %d TLS sessions without a failure" % (kind, ok, len(tls - failed)))
        need(ok <= len(tls), where + ": successful counts only TLS sessions")
        need(isinstance(det, list) and all(isinstance(d.get("result-type"), str) and isinstance(d.get("failed-session-count"), int)
                                           and isinstance(d.get("sending-mta-ip"), str) and isinstance(d.get("receiving-ip"), str)
                                           for d in det), where + ": failure-details fields")
        need(sum(d["failed-session-count"] for d in det) >= bad, where + ": details cover the failures")
        need(all(re.match(r"^(127\.|fd6d:7877:)", d["sending-mta-ip"]) for d in det), where + ": only the senders' sessions")
    return day, r["report-id"]
posted = {}
for f in sorted(os.listdir(os.path.join(T, "posts"))):
    if not f.endswith(".body"):
        continue
    meta = json.load(open(os.path.join(T, "posts", f[:-5] + ".json")))
    need(meta["headers"].get("Content-Type") == "application/tlsrpt+gzip", f + ": Content-Type")
    raw = open(os.path.join(T, "posts", f), "rb").read()
    try:
        r = json.loads(gzip.decompress(raw))
    except Exception as e:
        fails.append(f + ": not gzip JSON: %s" % e); continue
    day, rid = check_report(r, f)
    posted.setdefault(meta["path"], {})[day] = raw
mails = {}
mb = os.path.join(T, "mail", "reports.mbox")
for m in (mailbox.mbox(mb) if os.path.exists(mb) else []):
    sub = m["Subject"] or ""
    mm = re.match(r"^Report Domain: example\.test Submitter: mail\.sender\.test Report-ID: <(.+)>$", sub)
    need(mm is not None, "mail subject %r" % sub)
    need(m["TLS-Report-Domain"] == "example.test", "TLS-Report-Domain")
    need(m["TLS-Report-Submitter"] == "mail.sender.test", "TLS-Report-Submitter")
    need(m.get_content_type() == "multipart/report" and m.get_param("report-type") == "tlsrpt", "multipart/report; report-type=tlsrpt")
    parts = [p for p in m.walk() if p.get_content_type() == "application/tlsrpt+gzip"]
    need(len(parts) == 1, "one application/tlsrpt+gzip part")
    if not parts:
        continue
    raw = parts[0].get_payload(decode=True)
    r = json.loads(gzip.decompress(raw))
    day, rid = check_report(r, "mail")
    need(mm is None or mm.group(1) == rid, "subject's Report-ID is the report's")
    fn = parts[0].get_filename() or ""
    need(re.match(r"^mail\.sender\.test!example\.test!%d!%d!.+\.json\.gz$" % (day, day + 86399), fn) is not None, "attachment name %r" % fn)
    mails[day] = raw
print("posts:", {k: len(v) for k, v in posted.items()}, "mails:", len(mails))
need(len(posted.get("/ok", {})) == nday, "/ok got one report per day")
need(len(mails) == nmail, "%d mails, want %d" % (len(mails), nmail))
for day, raw in mails.items():
    need(gzip.decompress(raw) == gzip.decompress(posted.get("/ok", {}).get(day, b"")), "mail = POST for %d" % day)
for f in fails:
    print("FAIL", f)
sys.exit(1 if fails else 0)
EOF
check "reports posted and mailed: RFC 8460 structure, counts = SQL, mail = POST, both policies" \
	python3 "$T/check.py" "$T" both tlsa,sts "$ndays" "$ndays"
check "the failure is said, with its HTTP status" grep -q "/flaky: FAILED (attempt 1): HTTP status 503" "$T/send1.out"
nposts=$(ls "$T"/posts/*.body | wc -l)
nmails=$(grep -c '^From ' "$T/mail/reports.mbox")

send both >"$T/send2.out" 2>&1
rc=$?
check "second --send: exit 1, sends nothing new, tries the failed one again" \
	grep -q "^0 report(s) sent, $ndays failed (tried again at the next --send), 0 given up, $((2 * ndays)) already sent" "$T/send2.out"
check "... attempt 2 said" grep -q "/flaky: FAILED (attempt 2)" "$T/send2.out"
touch "$T/flaky.ok"
send both >"$T/send3.out" 2>&1
rc=$?
check "third --send (the endpoint is back): exit 0, the failed ones delivered" \
	bash -c "[ $rc = 0 ] && grep -q '^$ndays report(s) sent, 0 failed' '$T/send3.out'"
sleep 1
check "nothing mailed twice" test "$(grep -c '^From ' "$T/mail/reports.mbox")" = "$nmails"
check "/flaky got exactly one report per day, /ok none more" test \
	"$(grep -l '"/flaky"' "$T"/posts/*.json | wc -l)|$(grep -l '"/ok"' "$T"/posts/*.json | wc -l)" = "$ndays|$ndays"
send both --dry-run >"$T/dry2.out" 2>&1
check "--dry-run afterwards: nothing due" grep -q "^0 report(s) would be sent, $((3 * ndays)) already sent" "$T/dry2.out"

# No policy at all: no-policy-found, successful = TLS sessions only.
rm -f "$T"/posts/* "$T/flaky.ok"
: >"$T/mail/reports.mbox"
printf 'tlsrpt example.test rua=https://%s:8443/ok\n' "$WEB" >"$T/ok.policy"
sqlite3 "$T/none.db" "DELETE FROM tlsrpt"
"$M" policy import --db "$T/none.db" "$T/ok.policy" >/dev/null
send none >"$T/none.out" 2>&1
check "no policy: sent ($(tail -1 "$T/none.out" | cut -c1-40))" grep -q "^$ndays report(s) sent, 0 failed" "$T/none.out"
check "no policy: no-policy-found, counts = SQL, successful only for TLS sessions" \
	python3 "$T/check.py" "$T" none no-policy-found "$ndays" 0

# Refusals: a redirect is not followed; an untrusted certificate fails.
printf 'tlsrpt example.test rua=https://%s:8443/moved\n' "$WEB" >"$T/moved.policy"
cp "$T/none.db" "$T/moved.db"
sqlite3 "$T/moved.db" "DELETE FROM tlsrpt_sent"
"$M" policy import --db "$T/moved.db" "$T/moved.policy" >/dev/null
before=$(ls "$T"/posts/*.body 2>/dev/null | wc -l)
send moved >"$T/moved.out" 2>&1
check "a redirect is a failure (HTTP status 301), not followed" \
	bash -c "grep -q 'FAILED (attempt 1): HTTP status 301' '$T/moved.out' && [ \$(ls '$T'/posts/*.body 2>/dev/null | wc -l) = $before ]"
cp "$T/none.db" "$T/untrusted.db"
sqlite3 "$T/untrusted.db" "DELETE FROM tlsrpt_sent"
"$M" report --send --config "$T/report.conf" --timeout 10 --db "$T/untrusted.db" >"$T/untrusted.out" 2>&1
check "an untrusted certificate is a failure" grep -qi "FAILED (attempt 1): .*certificate" "$T/untrusted.out"

# A destination that can never take a report is not tried again.
printf 'tlsrpt example.test rua=mailto:nobody%%40@report.test\n' >"$T/never.policy"
cp "$T/none.db" "$T/never.db"
sqlite3 "$T/never.db" "DELETE FROM tlsrpt_sent"
"$M" policy import --db "$T/never.db" "$T/never.policy" >/dev/null
send never >"$T/never1.out" 2>&1
send never >"$T/never2.out" 2>&1
check "a destination that is not one address: rejected once, never tried again" \
	bash -c "grep -q 'this destination can never take it' '$T/never1.out' &&
		grep -q '^0 report(s) sent, 0 failed (tried again at the next --send), 0 given up, 0 already sent; $ndays given up before' '$T/never2.out'"

# A lookup that failed with nothing known before is not "no reports wanted".
cp "$T/none.db" "$T/unknown.db"
sqlite3 "$T/unknown.db" "DELETE FROM tlsrpt_sent; UPDATE tlsrpt SET rua = NULL, result = 'temperror'"
send unknown --dry-run >"$T/unknown.out" 2>&1
check "a failed TLSRPT lookup is said, per domain and day, and counted" \
	bash -c "[ \$(grep -c 'example.test: TLSRPT record unknown (last lookup: temperror)' '$T/unknown.out') = $ndays ] &&
		grep -q '; 0 domain-day(s) without TLSRPT destinations, $ndays whose record is not known' '$T/unknown.out'"

# Two runs at once: the second one is refused, not a second sender.
exec 8>"$T/both.db.send-lock"
flock 8
send both >"$T/locked.out" 2>&1
rc=$?
exec 8>&-
check "a second --send while one runs: exit 2, said so" \
	bash -c "[ $rc = 2 ] && grep -q 'another .report --send. is running' '$T/locked.out'"

# Senders: without them --send refuses; with senders that sent nothing,
# nothing is due.
"$M" report --send --db "$T/both.db" >"$T/nosenders.out" 2>&1
check "--send without [report] senders: exit 2, said why" \
	bash -c "[ $? = 2 ] && grep -q 'needs \[report\] senders' '$T/nosenders.out'"
sed 's|^senders = .*|senders = 192.0.2.99|' "$T/report.conf" >"$T/other.conf"
cp "$T/none.db" "$T/other.db"
sqlite3 "$T/other.db" "DELETE FROM tlsrpt_sent"
"$M" report --send --dry-run --config "$T/other.conf" --db "$T/other.db" >"$T/other.out" 2>&1
check "senders that sent nothing: nothing due (other organisations' traffic never reported)" \
	grep -q "^0 report(s) would be sent" "$T/other.out"
finish
