#!/usr/bin/env bash
# The images workflow's step (.github/workflows/images.yml): build the pinned image of TARGET
# (default gpu; CUDA_ARCH: its TORCH_CUDA_ARCH_LIST) unless its content-hash name exists, and record name, id and repo digests in
# artifacts/images.json (and the job summary on GitHub). DOCKER_BASE replaces the pinned base.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${TARGET:-gpu}
bash envs/setup-host.sh
export PATH="$PWD/.venv-host/bin:$PATH"
args=(--target "$target")
[ -n "${DOCKER_BASE:-}" ] && args+=(--base "$DOCKER_BASE")
[ -n "${CUDA_ARCH:-}" ] && args+=(--cuda-arch "$CUDA_ARCH")
deploybench image build "${args[@]}"
name=$(deploybench image name "${args[@]}")
mkdir -p artifacts
# The name is this checkout's, not the image's first tag: an unchanged image that an older
# definition also named (a revert) carries both.
docker image inspect "$name" --format \
  '{"name": "'"$name"'", "id": "{{.Id}}", "repo_digests": {{json .RepoDigests}}, "labels": {{json .Config.Labels}}}' \
  > artifacts/images.json
cat artifacts/images.json
if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
  printf '### Image\n\n```json\n%s\n```\n' "$(cat artifacts/images.json)" >> "$GITHUB_STEP_SUMMARY"
fi
# The runner keeps every image it built; those of older definitions go (one a container still
# uses stays), or each change of envs/ would leave another CUDA image of many GB on its disk.
deploybench image prune "${args[@]}"
