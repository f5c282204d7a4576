# shellcheck shell=bash
# The test cluster's certificates and kubeconfigs (openssl; sourced by scripts/cluster.sh).
# One CA signs everything: the API server's serving certificate, and a client certificate
# per identity, named as Kubernetes' RBAC bootstrap policy expects (system:kube-scheduler,
# system:node:<name> in system:nodes, ...). Expects PKI, APISERVER_IP and SERVICE_IP.

# pki_client NAME CN [ORG]: a client certificate and key, PKI/NAME.{crt,key}.
pki_client() {
  local name=$1 cn=$2 org=${3:-}
  openssl req -new -newkey rsa:2048 -nodes -keyout "$PKI/$name.key" -out "$PKI/$name.csr" \
    -subj "${org:+/O=$org}/CN=$cn" 2>/dev/null
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" \
    -CAcreateserial -days 30 -out "$PKI/$name.crt" \
    -extfile <(printf 'keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n') \
    2>/dev/null
  rm -f "$PKI/$name.csr"
}

# pki_kubeconfig NAME SERVER: PKI/NAME.kubeconfig for the client certificate NAME.
pki_kubeconfig() {
  cat >"$PKI/$1.kubeconfig" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
  - name: jalur
    cluster:
      server: $2
      certificate-authority: $PKI/ca.crt
users:
  - name: $1
    user:
      client-certificate: $PKI/$1.crt
      client-key: $PKI/$1.key
contexts:
  - name: jalur
    context: {cluster: jalur, user: $1}
current-context: jalur
KUBECONFIG
}

# pki_make NODE...: the whole set, for the control plane and the given nodes.
pki_make() {
  local server=https://$APISERVER_IP:6443 node
  mkdir -p "$PKI"
  openssl req -x509 -new -newkey rsa:2048 -nodes -keyout "$PKI/ca.key" -out "$PKI/ca.crt" \
    -days 30 -subj "/CN=jalur-cluster-ca" 2>/dev/null
  openssl req -new -newkey rsa:2048 -nodes -keyout "$PKI/apiserver.key" \
    -out "$PKI/apiserver.csr" -subj "/CN=kube-apiserver" 2>/dev/null
  openssl x509 -req -in "$PKI/apiserver.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" \
    -CAcreateserial -days 30 -out "$PKI/apiserver.crt" -extfile <(printf '%s\n' \
      'keyUsage=critical,digitalSignature,keyEncipherment' 'extendedKeyUsage=serverAuth' \
      "subjectAltName=IP:$APISERVER_IP,IP:$SERVICE_IP,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost") \
    2>/dev/null
  rm -f "$PKI/apiserver.csr"
  openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
  openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  pki_client admin admin system:masters
  pki_client apiserver-kubelet-client kube-apiserver-kubelet-client system:masters
  pki_client controller-manager system:kube-controller-manager
  pki_client scheduler system:kube-scheduler
  pki_client kube-proxy system:kube-proxy
  for name in admin controller-manager scheduler kube-proxy; do
    pki_kubeconfig "$name" "$server"
  done
  for node in "$@"; do
    pki_client "$node" "system:node:$node" system:nodes
    pki_kubeconfig "$node" "$server"
  done
  chmod 0600 "$PKI"/*.key
}
