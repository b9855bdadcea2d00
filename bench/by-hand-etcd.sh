#!/usr/bin/env bash
# The guide's etcd procedure done by hand, as a plain script (the baseline `npm run bench:deploy`
# measures binkube against): openssl for the CA and the member certificates, then per host, one
# after another as the guide does it: ssh mkdir, scp the binaries and certificates, write etcd.conf
# and the unit, `systemctl start --no-block`; then an `etcdctl endpoint health` loop until every
# member is healthy. No checks beyond the guide's: this is the floor, not a product.
#
#   bench/by-hand-etcd.sh BIN_DIR SSH_KEY KNOWN_HOSTS NAME=ADDRESS...
set -euo pipefail
bin=$1 key=$2 known=$3
shift 3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ssh_opts=(-i "$key" -o UserKnownHostsFile="$known" -o StrictHostKeyChecking=yes -o BatchMode=yes -o LogLevel=ERROR)
cluster=""
for m in "$@"; do cluster+="${cluster:+,}${m%%=*}=https://${m#*=}:2380"; done

# the guide's certificates: one CA, one server certificate for all members (their IPs as SANs)
cd "$work"
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca-key.pem -out ca.pem -days 3650 -subj /CN=etcd-ca 2>/dev/null
sans="IP:127.0.0.1"
for m in "$@"; do sans+=",IP:${m#*=}"; done
openssl req -newkey rsa:2048 -nodes -keyout server-key.pem -out server.csr -subj /CN=etcd 2>/dev/null
printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$sans" >ext.cnf
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out server.pem -days 3650 -extfile ext.cnf 2>/dev/null

for m in "$@"; do
  name=${m%%=*} addr=${m#*=}
  ssh "${ssh_opts[@]}" "root@$addr" "mkdir -p /opt/etcd/bin /opt/etcd/cfg /opt/etcd/ssl /var/lib/etcd"
  scp -q "${ssh_opts[@]}" "$bin/etcd" "$bin/etcdctl" "root@$addr:/opt/etcd/bin/"
  scp -q "${ssh_opts[@]}" ca.pem server.pem server-key.pem "root@$addr:/opt/etcd/ssl/"
  ssh "${ssh_opts[@]}" "root@$addr" "cat > /opt/etcd/cfg/etcd.conf <<CONF
ETCD_NAME=\"$name\"
ETCD_DATA_DIR=\"/var/lib/etcd/default.etcd\"
ETCD_LISTEN_PEER_URLS=\"https://$addr:2380\"
ETCD_LISTEN_CLIENT_URLS=\"https://$addr:2379,https://127.0.0.1:2379\"
ETCD_INITIAL_ADVERTISE_PEER_URLS=\"https://$addr:2380\"
ETCD_ADVERTISE_CLIENT_URLS=\"https://$addr:2379\"
ETCD_INITIAL_CLUSTER=\"$cluster\"
ETCD_INITIAL_CLUSTER_TOKEN=\"etcd-cluster\"
ETCD_INITIAL_CLUSTER_STATE=\"new\"
ETCD_CERT_FILE=\"/opt/etcd/ssl/server.pem\"
ETCD_KEY_FILE=\"/opt/etcd/ssl/server-key.pem\"
ETCD_TRUSTED_CA_FILE=\"/opt/etcd/ssl/ca.pem\"
ETCD_CLIENT_CERT_AUTH=\"true\"
ETCD_PEER_CERT_FILE=\"/opt/etcd/ssl/server.pem\"
ETCD_PEER_KEY_FILE=\"/opt/etcd/ssl/server-key.pem\"
ETCD_PEER_TRUSTED_CA_FILE=\"/opt/etcd/ssl/ca.pem\"
ETCD_PEER_CLIENT_CERT_AUTH=\"true\"
CONF
cat > /usr/lib/systemd/system/etcd.service <<UNIT
[Unit]
Description=etcd
After=network-online.target
[Service]
Type=notify
EnvironmentFile=/opt/etcd/cfg/etcd.conf
ExecStart=/opt/etcd/bin/etcd
Restart=on-failure
LimitNOFILE=65536
[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload && systemctl enable --quiet etcd && systemctl start --no-block etcd"
done

endpoints=""
for m in "$@"; do endpoints+="${endpoints:+,}https://${m#*=}:2379"; done
for _ in $(seq 600); do
  n=$(ETCDCTL_API=3 "$bin/etcdctl" --cacert=ca.pem --cert=server.pem --key=server-key.pem --endpoints="$endpoints" --command-timeout=3s endpoint health 2>&1 | grep -c "is healthy" || true)
  [ "$n" = "$#" ] && exit 0
  sleep 0.2
done
echo "by-hand etcd: not healthy after 120 s" >&2
exit 1
