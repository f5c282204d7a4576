#!/usr/bin/env bash
# Jalur on a two-node minikube cluster: builds the image, starts minikube with Jalur as its CNI,
# runs a pod on each node and shows the path between them (traceroute) and that the server pod
# sees the client pod's own address (no NAT).
#
#   ./scripts/minikube.sh              # needs docker, minikube (a recent one) and kubectl
#   PROFILE=j2 ./scripts/minikube.sh   # another minikube profile (default: jalur)
#   MINIKUBE_START_ARGS="--driver=kvm2" ./scripts/minikube.sh
#
# Cleaning up afterwards: `minikube delete -p jalur` (printed at the end).
#
# How the image gets onto the nodes. `minikube start --cni=deploy/jalur.yaml` applies the
# manifest while the cluster comes up, but the image jalur:0.1.0 exists only in the local
# docker, and `minikube image load` needs a running cluster. So:
#   1. start with --cni=deploy/jalur.yaml: minikube gives every Node a spec.podCIDR out of
#      10.244.0.0/16 (what jalur-config's cluster-cidr says) and applies the manifest. The
#      DaemonSet's pods cannot pull jalur:0.1.0 (IfNotPresent, and no registry has it) and sit
#      in ErrImagePull/ImagePullBackOff; the nodes stay NotReady (no CNI config yet).
#      minikube's default waits (apiserver, system_pods) do not wait for Ready nodes, so
#      start returns; --wait is given explicitly so that a `wait: all` in the user's minikube
#      config cannot make it hang for its full timeout.
#   2. `minikube image load jalur:0.1.0` puts the image on every node of the profile.
#   3. delete the DaemonSet's pods so that they start now rather than after the image-pull
#      back-off (up to 5 minutes), and wait for the rollout and for both nodes to be Ready.
# (`--cni=false` and a `kubectl apply` after the load works too, but then minikube warns
# that a multi-node cluster has no CNI, and the manifest is not re-applied on a restart.)
set -euo pipefail
cd "$(dirname "$0")/.."

PROFILE=${PROFILE:-jalur}
IMAGE=jalur:0.1.0
TEST_IMAGE=${TEST_IMAGE:-nicolaka/netshoot:v0.14}
read -r -a START_ARGS <<<"${MINIKUBE_START_ARGS:-}"

for tool in docker minikube kubectl; do
  command -v "$tool" >/dev/null || { echo "minikube.sh: $tool is not installed" >&2; exit 1; }
done
k() { kubectl --context "$PROFILE" "$@"; }

echo "== building the image $IMAGE (deploy/Dockerfile)"
docker build -t "$IMAGE" -f deploy/Dockerfile .

echo "== starting minikube profile $PROFILE: 2 nodes, CNI deploy/jalur.yaml"
minikube start -p "$PROFILE" --nodes=2 --cni="$PWD/deploy/jalur.yaml" \
  --wait=apiserver,system_pods ${START_ARGS[@]+"${START_ARGS[@]}"}

echo "== loading $IMAGE onto every node"
minikube -p "$PROFILE" image load "$IMAGE"
# Pods stuck in image-pull back-off start again at once, now with the image in place.
k -n kube-system delete pod -l app.kubernetes.io/name=jalur --wait=false
k -n kube-system rollout status ds/jalur --timeout=5m
k wait --for=condition=Ready node --all --timeout=3m
k get nodes -o custom-columns='NODE:.metadata.name,IP:.status.addresses[?(@.type=="InternalIP")].address,POD CIDR:.spec.podCIDR,READY:.status.conditions[?(@.type=="Ready")].status'

mapfile -t NODES < <(k get nodes -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}')
[ "${#NODES[@]}" -ge 2 ] || { echo "minikube.sh: expected 2 nodes, got: ${NODES[*]}" >&2; exit 1; }

echo "== a client pod on ${NODES[0]}, a server pod on ${NODES[1]}"
# The server answers every TCP connection on 8080 with the client address it sees.
k delete pod jalur-client jalur-server --ignore-not-found --wait=true >/dev/null
# demo_pod NAME NODE COMMAND: a pod of the demo image pinned to NODE (COMMAND as JSON).
demo_pod() {
  cat <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: $1
  labels: {app: jalur-demo}
spec:
  nodeName: $2
  containers:
    - name: main
      image: $TEST_IMAGE
      command: $3
EOF
}
{
  # shellcheck disable=SC2016 # $$ is Kubernetes' escape of $: socat's shell expands it
  demo_pod jalur-server "${NODES[1]}" \
    '["socat", "TCP-LISTEN:8080,fork,reuseaddr", "SYSTEM:echo $$SOCAT_PEERADDR"]'
  echo ---
  demo_pod jalur-client "${NODES[0]}" '["sleep", "infinity"]'
} | k apply -f -
k wait --for=condition=Ready pod/jalur-client pod/jalur-server --timeout=5m
CLIENT_IP=$(k get pod jalur-client -o jsonpath='{.status.podIP}')
SERVER_IP=$(k get pod jalur-server -o jsonpath='{.status.podIP}')
k get pods -l app=jalur-demo -o wide

echo
echo "== traceroute -n from jalur-client ($CLIENT_IP, ${NODES[0]}) to jalur-server ($SERVER_IP, ${NODES[1]})"
echo "   expected: ${NODES[0]}'s address, ${NODES[1]}'s address, then $SERVER_IP"
k exec jalur-client -- traceroute -n -w 2 -q 1 "$SERVER_IP"

echo
echo "== no NAT: the server reports the client address it sees"
SEEN=$(k exec jalur-client -- sh -c "nc -w 3 $SERVER_IP 8080 </dev/null" | tr -d '\r\n')
echo "   client pod IP: $CLIENT_IP   seen by the server: $SEEN"
if [ "$SEEN" = "$CLIENT_IP" ]; then
  echo "   OK: pod to pod without NAT"
else
  echo "   FAIL: the server saw $SEEN, not the client's own address" >&2
  status=1
fi

echo
echo "== routes the agent made on ${NODES[0]}"
minikube -p "$PROFILE" ssh -n "${NODES[0]}" -- ip route show | grep -E '10\.244\.' || true

cat <<EOF

Done. Look around:
  kubectl --context $PROFILE -n kube-system logs ds/jalur
  kubectl --context $PROFILE exec -it jalur-client -- sh
Clean up:
  minikube delete -p $PROFILE
EOF
exit "${status:-0}"
