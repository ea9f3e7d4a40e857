#!/usr/bin/env bash
# The benchmark workflow's job on a self-hosted GPU runner (.github/workflows/benchmark.yml),
# also run step by step by tests/test_workflows.py. Runs the DAG with every step in the pinned
# image and gathers the run's docs and result files under artifacts/<profile>/.
# Environment:
#   PROFILE      hardware profile, the runner's label (required)
#   RUN_ID       the run's key: a new key measures every cell again (required)
#   CONFIG       pipeline config file in this repository (default config.yaml)
#   MODELS       comma-separated model keys (default: every model of the config)
#   TARGET       image target (default gpu); DOCKER_BASE replaces its pinned base (tests)
#   REQUIRE_GPU  true (default): a GPU that cannot be reached fails the run (config
#                require_gpu); false only where no GPU exists (the workflow's rehearsal)
#   CORES        Snakemake cores (default: the profile's, all)
set -euo pipefail
cd "$(dirname "$0")/.."
: "${PROFILE:?set PROFILE to the hardware profile}" "${RUN_ID:?set RUN_ID to the run key}"
config=${CONFIG:-config.yaml} target=${TARGET:-gpu} models=${MODELS:-}
require_gpu=${REQUIRE_GPU:-true}
# Inputs come from a person's workflow_dispatch: only plain names reach Snakemake's --config.
# PROFILE and RUN_ID also name folders this script empties: no '/', no '..'.
for value in "$PROFILE" "$RUN_ID"; do
  [[ $value =~ ^[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$ ]] || {
    echo "error: bad name '$value': letters, digits, '_', '-' and single inner dots only" >&2
    exit 2; }
done
for value in "$target" "${DOCKER_BASE:-x}"; do
  [[ $value =~ ^[A-Za-z0-9][A-Za-z0-9._/:@-]*$ && $value != *..* ]] || {
    echo "error: bad value '$value'" >&2; exit 2; }
done
[[ $require_gpu == true || $require_gpu == false ]] || {
  echo "error: REQUIRE_GPU must be true or false" >&2; exit 2; }
[[ $models =~ ^[A-Za-z0-9_.,-]*$ ]] || { echo "error: MODELS must be comma-separated model keys" >&2; exit 2; }
[[ $config != /* && $config != *..* && -f $config ]] || {
  echo "error: CONFIG '$config' is not a config file in this repository" >&2; exit 2; }

bash envs/setup-host.sh
export PATH="$PWD/.venv-host/bin:$PATH"
image_args=(--target "$target")
docker="{target: $target}"
if [ -n "${DOCKER_BASE:-}" ]; then
  image_args+=(--base "$DOCKER_BASE")
  docker="{target: $target, base: '$DOCKER_BASE'}"
fi
deploybench image build "${image_args[@]}"
# Snakemake's --config reads True and False, not true and false, as booleans.
overrides=(profile="$PROFILE" run="$RUN_ID" runtime=docker docker="$docker"
           require_gpu="$([ "$require_gpu" = true ] && echo True || echo False)")
[ -n "$models" ] && overrides+=(matrix="{models: [${models//,/, }]}")
snakemake --profile profiles/gpu-runner ${CORES:+--cores "$CORES"} --configfile "$config" \
  --config "${overrides[@]}" || status=$?

# The docs and the result records (not the models and engines) go to the publishing job.
out=artifacts/$PROFILE
rm -rf "$out" && mkdir -p "$out/results"
[ -d "reports/$PROFILE" ] && cp -r "reports/$PROFILE" "$out/reports"
(cd "results/$PROFILE/$RUN_ID" 2> /dev/null && find . -name '*.json' -exec cp --parents {} "../../../$out/results/" \;) || true
echo "artifacts in $out; snakemake exit status ${status:-0}"
exit "${status:-0}"
