#!/usr/bin/env bash
# The GPU speed check of issue 12 (docs/gpu.md), in parts run in order of
# importance under a time budget: environment; the no-sync check
# (python3 -m tests.cuda.no_sync); the target step times (SGD, SAM and
# AUSAM-0.5 in bf16 with channels_last at batch 128, ResNet-18 and
# WRN-28-10, eager, then compiled); the epoch time through the config and
# Runner on the 50,000 CIFAR-10 training JPEGs; the CUDA-graph tests; when
# named, the fast-path paper run (benchmarks/fastpath.py); then, with time
# left, a batch sweep and the rest of the matrix. Writes gpu_check.json,
# gpu_check.md and gpu_check.log to $OUT and prints the markdown last.
#
# Before the device calls, in the repository root on this machine:
#   bash benchmarks/gpu_wheels.sh               # mmengine stack -> .whl/
#   mkdir -p .data/cifar10
#   cp ../shared/data/cifar10/cifar10-jpg-train.tar.gz .data/cifar10/
#   echo /.data/ >> "$(git rev-parse --git-common-dir)/info/exclude"
#
# The plan for a 900 s device budget (machine start included; docs/gpu.md,
# "The plan"): two calls of about 660 s together, each on a fresh machine
# (a warm one is given back 30 s after a call ends):
#   1. run(command='BUDGET_S=400 bash benchmarks/gpu_check.sh',
#          carry=['.whl', '.data'], timeout_s=420)
#   2. run(command='PARTS=env,fastpath,cudagraphs FASTPATH_EPOCHS=15 '
#          'BUDGET_S=220 bash benchmarks/gpu_check.sh',
#          carry=['.whl', '.data'], timeout_s=240)
#
#   bash benchmarks/gpu_check.sh --smoke   # CPU, tiny sizes, a few minutes
#
# Environment: OUT (default work_dirs/gpu_check); DEVICE (cuda; --smoke:
# cpu); BUDGET_S (seconds for the whole check, default 400: keep it 20 s
# under the call's timeout_s; a part that would start with under 20 s left
# is recorded as skipped, one running past it is stopped); PARTS (default
# env,nosync,step,compile,epoch,cudagraphs,sweep,matrix; --smoke adds
# fastpath; they run in a fixed order, whatever the order named); FASTPATH_EPOCHS (epochs of the 200-epoch schedule that the
# fastpath part trains, default all 200; fewer gives the steady epoch time
# and an extrapolated 200-epoch wall time; --smoke: 2 of 2);
# FASTPATH_ARGS (more benchmarks/fastpath.py options, word-split, default
# '--resume --work-dir work_dirs/fastpath'; --smoke: '--smoke --work-dir
# <temporary>'); SITE (where the wheels go, default /tmp/site); PYTHON
# (default .venv/bin/python where it exists, else
# python3: on the device python3 holds torch).
set -uo pipefail
cd "$(dirname "$0")/.."
SMOKE=0
[ "${1:-}" = --smoke ] && SMOKE=1
OUT=${OUT:-work_dirs/gpu_check}
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else
        PYTHON=python3; fi
fi
# In the order they run (fastpath before cudagraphs: the plan's second
# call names both).
ALL_PARTS=env,nosync,step,compile,epoch,fastpath,cudagraphs,sweep,matrix
if [ $SMOKE = 1 ]; then
    PARTS=${PARTS:-$ALL_PARTS}
else
    PARTS=${PARTS:-env,nosync,step,compile,epoch,cudagraphs,sweep,matrix}
fi
for p in ${PARTS//,/ }; do
    if [[ ",$ALL_PARTS," != *",$p,"* ]]; then
        echo "PARTS: unknown part '$p'; known: $ALL_PARTS" >&2
        exit 2
    fi
done
BUDGET_S=${BUDGET_S:-400}
if [ $SMOKE = 1 ]; then
    DEVICE=${DEVICE:-cpu}
    FASTPATH_EPOCHS=${FASTPATH_EPOCHS:-2}
else
    DEVICE=${DEVICE:-cuda}
    FASTPATH_EPOCHS=${FASTPATH_EPOCHS:-200}
fi
if ! [[ $FASTPATH_EPOCHS =~ ^[1-9][0-9]*$ ]]; then
    echo "FASTPATH_EPOCHS=$FASTPATH_EPOCHS: give a whole number of epochs" >&2
    exit 2
fi
START=$(date +%s)
RUNS=$(mktemp -d)
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
: >"$LOG"
echo "python: $PYTHON; parts: $PARTS; budget ${BUDGET_S}s" | tee -a "$LOG"
export PYTHONUNBUFFERED=1
SITE=${SITE:-/tmp/site}

# The mmengine stack travels as wheels (benchmarks/gpu_wheels.sh). pytest
# does not: the device's own runs tests/cuda with its installed plugins,
# which a carried pytest first on PYTHONPATH could break.
if ! $PYTHON -c 'import mmengine' 2>/dev/null; then
    WHEELS=()
    for w in .whl/*.whl; do
        [ -e "$w" ] || continue
        case ${w##*/} in
            pytest-* | pluggy-* | iniconfig-* | packaging-* | pygments-*)
                # an older .whl/ (gpu_wheels.sh no longer fetches these)
                echo "not installing $w: the device has its own" \
                    | tee -a "$LOG" ;;
            *) WHEELS+=("$w") ;;
        esac
    done
    if [ ${#WHEELS[@]} -gt 0 ]; then
        $PYTHON -m pip install -q --no-index --no-deps --no-compile \
            --no-cache-dir --upgrade --target "$SITE" "${WHEELS[@]}" \
            >>"$LOG" 2>&1 || echo 'wheel install failed' | tee -a "$LOG"
        export PYTHONPATH=$SITE
    else
        echo 'no mmengine and no .whl/: most parts will fail' | tee -a "$LOG"
    fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

has() { [[ ",$PARTS," == *",$1,"* ]]; }
left() { echo $((BUDGET_S - ($(date +%s) - START))); }

# run TAG CAP_S CMD...: one part under `timeout`, capped by what is left
# of the budget; its status goes to $RUNS/status.tsv.
run() {
    local tag=$1 cap=$2 t0 rc limit
    shift 2
    limit=$(left)
    [ "$limit" -gt "$cap" ] && limit=$cap
    if [ "$limit" -lt 20 ]; then
        printf '%s\tskipped\t0\n' "$tag" >>"$RUNS/status.tsv"
        echo "== $tag: skipped (budget)" | tee -a "$LOG"
        return
    fi
    echo "== $tag (limit ${limit}s): $*" | tee -a "$LOG"
    t0=$(date +%s)
    timeout -k 10 "$limit" "$@" >>"$LOG" 2>&1
    rc=$?
    printf '%s\t%s\t%s\n' "$tag" "$rc" $(($(date +%s) - t0)) \
        >>"$RUNS/status.tsv"
    echo "   rc $rc after $(($(date +%s) - t0))s" | tee -a "$LOG"
}

TARGET=SGD,SAM,AUSAM-0.5
if [ $SMOKE = 1 ]; then
    MODELS=resnet20-w8
    BATCH=16
    SWEEP=16,32
    STEPS=(--steps 1 --warmup 1 --alphas 0.5)
    COMPILE_ARGS=(--compile --compile-backend aot_eager)
    EPOCH_ARGS=(--images 200 --batch-size 32 --model resnet20-w8
        --workers 0)
    CAP_NOSYNC=120 CAP_STEP=120 CAP_COMPILE=240 CAP_EPOCH=120
    CAP_CUDAGRAPHS=120 CAP_SWEEP=120
    FASTPATH_ARGS=${FASTPATH_ARGS:---smoke --work-dir $RUNS/fastpath}
else
    MODELS='resnet18 wrn28-10'
    BATCH=128
    SWEEP=64,128,256,512,1024
    STEPS=(--steps 7 --warmup 2)
    COMPILE_ARGS=(--compile)
    EPOCH_ARGS=(--images 50000 --batch-size 128 --model resnet18
        --workers 12)
    CAP_NOSYNC=60 CAP_STEP=45 CAP_COMPILE=100 CAP_EPOCH=100
    CAP_CUDAGRAPHS=90 CAP_SWEEP=60
    # Resumes from work_dirs/fastpath when a previous call on the same
    # (still warm) machine was cut short.
    FASTPATH_ARGS=${FASTPATH_ARGS:---resume --work-dir work_dirs/fastpath}
fi
read -ra FASTPATH_OPTS <<<"$FASTPATH_ARGS"
# The data travels in .data/ (../shared does not); else tools/data_root.py's
# default.
[ -f .data/cifar10/cifar10-jpg-train.tar.gz ] && export AUSAM_DATA_ROOT=$PWD/.data

if has env; then
    {
        if command -v nvidia-smi >/dev/null; then
            nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm \
                --format=csv
        else
            echo 'nvidia-smi: not available'
        fi
        $PYTHON -c 'import torch, platform; print("python",
platform.python_version(), "torch", torch.__version__, "cuda",
torch.version.cuda, "cudnn", torch.backends.cudnn.version(), "gpu",
torch.cuda.get_device_name() if torch.cuda.is_available() else None)'
        $PYTHON -c 'import mmengine; print("mmengine", mmengine.__version__)'
    } >"$RUNS/env.txt" 2>&1
    cat "$RUNS/env.txt" >>"$LOG"
fi

# tee (not redirect) keeps the test output for the report when cut short.
tests_part() { # part cap cmd
    local part=$1 cap=$2
    shift 2
    run "$part" "$cap" bash -c "set -o pipefail; $* 2>&1 | tee \
        $RUNS/$part.txt"
}
# First the step without host stalls: no pytest needed, its own cap.
if has nosync; then
    tests_part nosync "$CAP_NOSYNC" "$PYTHON -m tests.cuda.no_sync"
fi

step() { # tag model options...
    local tag=$1 model=$2
    shift 2
    run "$tag" "${CAP:-$CAP_STEP}" $PYTHON benchmarks/step_time.py \
        --device "$DEVICE" --model "$model" "${STEPS[@]}" \
        --out "$RUNS/step_$tag.json" "$@"
}
target() { # model [compile]: SAM vs AUSAM-0.5 (and SGD), bf16, batch 128
    local m=$1
    shift
    step "$m-bf16-cl${1:+-compile}" "$m" --batch-sizes $BATCH \
        --dtype bfloat16 --channels-last --methods $TARGET "$@"
}
set -- $MODELS
FIRST=$1 SECOND=${2:-}
# The issue's targets first: eager on both models, compiled on the first,
# the epoch time, compiled on the second. Compiled runs time only the
# target methods: every other method would add cold inductor compiles.
if has step; then
    for m in $MODELS; do target "$m"; done
fi
if has compile; then
    CAP=$CAP_COMPILE target "$FIRST" "${COMPILE_ARGS[@]}"
fi
if has epoch; then
    run epoch "$CAP_EPOCH" $PYTHON benchmarks/runner_epoch_time.py \
        --out "$RUNS/epoch.json" "${EPOCH_ARGS[@]}"
fi
if has compile && [ -n "$SECOND" ]; then
    CAP=$CAP_COMPILE target "$SECOND" "${COMPILE_ARGS[@]}"
fi
# The paper run on the fast path (bf16, CUDA graphs, data on the device):
# pickles made from the JPEG archive (timed), then FASTPATH_EPOCHS epochs
# of the 200-epoch schedule; its JSON is rewritten after every epoch.
if has fastpath; then
    run fastpath "${CAP_FASTPATH:-$BUDGET_S}" $PYTHON benchmarks/fastpath.py \
        --out "$RUNS/fastpath.json" --stop-after "$FASTPATH_EPOCHS" \
        "${FASTPATH_OPTS[@]}"
fi

# Compiled passes with CUDA graphs against eager (slow: many compiles).
if has cudagraphs; then
    tests_part cudagraphs "$CAP_CUDAGRAPHS" "$PYTHON -m pytest \
        tests/cuda/test_cudagraphs.py -q -p no:cacheprovider"
fi

# With time left: where AUSAM's saving appears (first model, bf16)...
if has sweep; then
    CAP=$CAP_SWEEP step "$FIRST-bf16-cl-sweep" "$FIRST" --batch-sizes \
        $SWEEP --dtype bfloat16 --channels-last --methods $TARGET
fi
# ... and the rest of the matrix: every method eager (smoke: one run).
if has matrix; then
    [ $SMOKE = 1 ] && MODELS=$FIRST
    for m in $MODELS; do
        step "$m-bf16-cl-all" "$m" --batch-sizes $BATCH --dtype bfloat16 \
            --channels-last
        [ $SMOKE = 1 ] && break
        step "$m-fp32" "$m" --batch-sizes $BATCH
        step "$m-fp32-cl" "$m" --batch-sizes $BATCH --channels-last
        step "$m-bf16" "$m" --batch-sizes $BATCH --dtype bfloat16
    done
fi

$PYTHON benchmarks/gpu_report.py "$RUNS" "$OUT" --budget "$BUDGET_S" \
    --elapsed $(($(date +%s) - START))
rm -rf "$RUNS"
