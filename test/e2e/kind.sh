#!/usr/bin/env bash
# End-to-end check on a local kind cluster, for machines with a Docker engine
# (needs docker, kind, kubectl and helm on PATH): build the kmq image, load it into
# the cluster, helm install charts/kmq, apply examples/kubernetes, wait until every
# kmq object is Ready, then publish and consume through an injected sidecar.
#   bash test/e2e/kind.sh                 # creates and deletes cluster kmq-e2e
#   KMQ_E2E_KEEP=1 bash test/e2e/kind.sh  # keeps the cluster for a look afterwards
set -euo pipefail
cd "$(dirname "$0")/../.."

CLUSTER=${KMQ_E2E_CLUSTER:-kmq-e2e}
IMAGE=${KMQ_E2E_IMAGE:-kmq:e2e}
SYSTEM=kmq-system
NS=shop
GRPCURL_IMAGE=fullstorydev/grpcurl:v1.9.3-alpine
KINDS=brokerclusters.kmq.dev,topics.kmq.dev,queues.kmq.dev,exchanges.kmq.dev,subscriptions.kmq.dev,dlqpolicies.kmq.dev

for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null || { echo "kind.sh: $tool is not on PATH" >&2; exit 1; }
done

on_exit() {
  local code=$?
  if [[ $code -ne 0 ]]; then
    echo "--- failed (exit $code); state of the cluster:" >&2
    kubectl get "$KINDS" -n "$NS" -o wide >&2 || true
    kubectl get pods -A -o wide >&2 || true
    kubectl logs -n "$SYSTEM" -l app.kubernetes.io/component=operator --tail=100 --prefix >&2 || true
  fi
  if [[ ${KMQ_E2E_KEEP:-0} != 1 ]]; then kind delete cluster --name "$CLUSTER" || true; fi
}
trap on_exit EXIT

kind create cluster --name "$CLUSTER" --wait 120s
kubectl config use-context "kind-$CLUSTER"

docker build -t "$IMAGE" .
kind load docker-image "$IMAGE" --name "$CLUSTER"
docker pull "$GRPCURL_IMAGE"
kind load docker-image "$GRPCURL_IMAGE" --name "$CLUSTER"

repo=${IMAGE%:*}
tag=${IMAGE##*:}
image_values=()
for role in operator broker sidecar; do
  image_values+=(--set "image.$role.repository=$repo" --set "image.$role.tag=$tag")
done
helm install kmq charts/kmq --namespace "$SYSTEM" --create-namespace \
  "${image_values[@]}" --set image.pullPolicy=Never --wait --timeout 5m

kubectl create namespace "$NS"
kubectl apply -f examples/kubernetes/
# The example asks 500m CPU and 1Gi per broker; a kind node on a laptop may not spare three times that.
kubectl patch -n "$NS" brokerclusters.kmq.dev main --type merge \
  -p '{"spec":{"resources":{"requests":{"cpu":"100m","memory":"256Mi"},"limits":{"memory":"1Gi"}}}}'
# The brokers first (StatefulSet, volumes), then everything that lives on them.
kubectl wait -n "$NS" --for=condition=Ready brokerclusters.kmq.dev --all --timeout=10m
kubectl wait -n "$NS" --for=condition=Ready "$KINDS" --all --timeout=5m
kubectl get "$KINDS" -n "$NS" -o wide

# A client pod that opts into injection; its app container only holds grpcurl.
kubectl apply -f - <<YAML
apiVersion: v1
kind: Pod
metadata:
  name: e2e-client
  namespace: $NS
  labels: {kmq.dev/inject: "true"}
  annotations: {kmq.dev/subscriptions: email-workers}
spec:
  containers:
    - name: app
      image: $GRPCURL_IMAGE
      imagePullPolicy: Never
      command: [sleep, "3600"]
YAML
kubectl wait -n "$NS" --for=condition=Ready pod/e2e-client --timeout=3m
sidecars=$(kubectl get pod e2e-client -n "$NS" -o jsonpath='{.spec.initContainers[*].name}')
[[ " $sidecars " == *" kmq-sidecar "* ]] || { echo "kind.sh: no kmq-sidecar in e2e-client (init containers: $sidecars)" >&2; exit 1; }

# Publish to the notifications exchange; the binding email.# routes it to the emails queue.
message="kmq-e2e-$(date +%s)-$RANDOM"
payload=$(printf '%s' "$message" | base64)
kubectl exec -n "$NS" e2e-client -c app -- grpcurl -plaintext \
  -d "{\"destination\":{\"exchange\":{\"name\":\"notifications\",\"routingKey\":\"email.welcome\"}},\"payload\":\"$payload\"}" \
  127.0.0.1:50051 kmq.sidecar.v1.Sidecar/Publish

# Consume it through email-workers: the stream stays open while stdin does.
received=$(kubectl exec -n "$NS" e2e-client -c app -- sh -c \
  "(echo '{\"start\":{\"subscription\":\"email-workers\"}}'; sleep 15) | grpcurl -plaintext -max-time 30 -d @ 127.0.0.1:50051 kmq.sidecar.v1.Sidecar/Consume" || true)
if [[ $received != *"\"$payload\""* ]]; then
  echo "kind.sh: the published message was not consumed; Consume printed:" >&2
  echo "$received" >&2
  exit 1
fi
echo "kind.sh: published and consumed $message through the injected sidecar"
