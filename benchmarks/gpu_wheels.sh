#!/usr/bin/env bash
# Download, on this machine, the wheels the GPU check needs and the device
# machine lacks (it has torch, torchvision, numpy, scipy, opencv, matplotlib,
# pyyaml, rich, pytest with its plugins, but no registry access): mmengine,
# mmcv-lite and albumentations with their pure-Python (and two small binary)
# dependencies, at the versions of this project's venv, for Python 3.12 on
# x86-64. typing_extensions travels too: the device's is older than the
# 4.16 that pydantic_core 2.50 needs (it imports typing_extensions.Sentinel;
# tasks.classification imports albumentations, which imports pydantic).
# pytest does not travel: the device's own, with its installed plugins, runs
# tests/cuda (a carried pytest first on PYTHONPATH would meet those plugins
# at other versions). They land in the git-ignored .whl/ that a device call
# carries (carry=['.whl', ...]); benchmarks/gpu_check.sh installs them with
#   python3 -m pip install --no-index --no-deps --target /tmp/site .whl/*.whl
#
#   bash benchmarks/gpu_wheels.sh         # from the repository root
set -euo pipefail
cd "$(dirname "$0")/.."
EXCLUDE="$(git rev-parse --git-common-dir)/info/exclude"
grep -qxF '/.whl/' "$EXCLUDE" 2>/dev/null || echo '/.whl/' >>"$EXCLUDE"
mkdir -p .whl
PKGS=(
    mmengine==0.10.7 addict==2.4.0 termcolor==3.3.0 yapf==0.43.0
    platformdirs==4.14.8 mmcv-lite==2.1.0
    albumentations==2.0.8 albucore==0.0.24 pydantic==2.14.4
    pydantic_core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
    simsimd==6.5.16 stringzilla==5.3.2 typing_extensions==4.16.0
)
for p in "${PKGS[@]}"; do
    python3 -m pip download -q --no-deps --only-binary=:all: \
        --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform manylinux1_x86_64 -d .whl "$p"
done
ls -l .whl
du -sh .whl
