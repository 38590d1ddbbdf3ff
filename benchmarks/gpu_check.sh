#!/usr/bin/env bash
# The GPU speed check of issue 12 as one device call (docs/gpu.md):
# environment, step times of every method (ResNet-18 and WRN-28-10, batch
# 128, fp32 / bf16, with and without channels_last and torch.compile), a
# batch-size sweep, and the epoch time through the config and Runner on the
# 50,000 CIFAR-10 training JPEGs, the CUDA tests (tests/cuda), and, asked
# for, the fast-path paper run (200 epochs, benchmarks/fastpath.py). Writes
# gpu_check.json, gpu_check.md and gpu_check.log to $OUT and prints the
# markdown last.
#
# Before the device call, in the repository root on this machine:
#   bash benchmarks/gpu_wheels.sh               # mmengine stack -> .whl/
#   mkdir -p .data/cifar10
#   cp ../shared/data/cifar10/cifar10-jpg-train.tar.gz .data/cifar10/
#   echo /.data/ >> "$(git rev-parse --git-common-dir)/info/exclude"
# then run(command='bash benchmarks/gpu_check.sh', carry=['.whl', '.data'],
#          timeout_s=480).
#
#   bash benchmarks/gpu_check.sh --smoke   # CPU, tiny sizes, a few minutes
#
# The 200-epoch fast-path run needs a call of its own (10 minutes at most
# per call): run(command='PARTS=fastpath BUDGET_S=570 bash
# benchmarks/gpu_check.sh', carry=['.whl', '.data'], timeout_s=600). It
# makes the pickles from the JPEG archive there, checkpoints every 10
# epochs into work_dirs/fastpath and writes its JSON after every epoch; a
# rerun on the still-warm machine resumes from the last checkpoint.
#
# Environment: OUT (default work_dirs/gpu_check), DEVICE (cuda; --smoke:
# cpu), BUDGET_S (seconds for the whole check, default 420; parts that would
# start past it are recorded as skipped), PARTS (default
# env,step,sweep,epoch,compile,cudatests; --smoke adds fastpath; fastpath
# alone: the paper run), PYTHON (default python3).
set -uo pipefail
cd "$(dirname "$0")/.."
SMOKE=0
[ "${1:-}" = --smoke ] && SMOKE=1
OUT=${OUT:-work_dirs/gpu_check}
PYTHON=${PYTHON:-python3}
if [ $SMOKE = 1 ]; then
    PARTS=${PARTS:-env,step,sweep,epoch,compile,cudatests,fastpath}
else
    PARTS=${PARTS:-env,step,sweep,epoch,compile,cudatests}
fi
BUDGET_S=${BUDGET_S:-420}
if [ $SMOKE = 1 ]; then DEVICE=${DEVICE:-cpu}; else DEVICE=${DEVICE:-cuda}; fi
START=$(date +%s)
RUNS=$(mktemp -d)
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
: >"$LOG"
export PYTHONUNBUFFERED=1

# The mmengine stack travels as wheels (benchmarks/gpu_wheels.sh).
if ! $PYTHON -c 'import mmengine' 2>/dev/null; then
    if ls .whl/*.whl >/dev/null 2>&1; then
        $PYTHON -m pip install -q --no-index --no-deps --no-compile \
            --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
            >>"$LOG" 2>&1 || echo 'wheel install failed' | tee -a "$LOG"
        export PYTHONPATH=/tmp/site
    else
        echo 'no mmengine and no .whl/: the epoch part will fail' | tee -a "$LOG"
    fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

has() { [[ ",$PARTS," == *",$1,"* ]]; }
left() { echo $((BUDGET_S - ($(date +%s) - START))); }

# run TAG CAP_S CMD...: one benchmark under `timeout`, capped by what is
# left of the budget; its status goes to $RUNS/status.tsv.
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
    timeout "$limit" "$@" >>"$LOG" 2>&1
    rc=$?
    printf '%s\t%s\t%s\n' "$tag" "$rc" $(($(date +%s) - t0)) \
        >>"$RUNS/status.tsv"
    echo "   rc $rc after $(($(date +%s) - t0))s" | tee -a "$LOG"
}

if [ $SMOKE = 1 ]; then
    MODELS=resnet20-w8
    BATCH=16
    SWEEP=16,32
    STEPS=(--steps 1 --warmup 1 --alphas 0.5)
    COMPILE_ARGS=(--compile --compile-backend aot_eager
        --methods SGD,SAM,AUSAM-0.5)
    EPOCH_ARGS=(--images 200 --batch-size 32 --model resnet20-w8
        --workers 0)
    CAP_STEP=120 CAP_EPOCH=120 CAP_COMPILE=240 CAP_CUDATESTS=120
    FASTPATH_ARGS=(--smoke --work-dir "$RUNS/fastpath")
    CAP_FASTPATH=240
else
    MODELS='resnet18 wrn28-10'
    BATCH=128
    SWEEP=64,128,256,512,1024
    STEPS=(--steps 7 --warmup 2)
    COMPILE_ARGS=(--compile)
    EPOCH_ARGS=(--images 50000 --batch-size 128 --model resnet18
        --workers 12)
    CAP_STEP=90 CAP_EPOCH=200 CAP_COMPILE=150 CAP_CUDATESTS=150
    # Resumes from work_dirs/fastpath when a previous call was cut short.
    FASTPATH_ARGS=(--resume --work-dir work_dirs/fastpath)
    CAP_FASTPATH=$BUDGET_S
fi
# The data travels in .data/ (../shared does not); else tools/data_root.py's
# default.
[ -f .data/cifar10/cifar10-jpg-train.tar.gz ] && export AUSAM_DATA_ROOT=$PWD/.data

if has env; then
    {
        if command -v nvidia-smi >/dev/null; then nvidia-smi; else
            echo 'nvidia-smi: not available'; fi
        $PYTHON -c 'import torch, platform; print("python",
platform.python_version(), "torch", torch.__version__, "cuda",
torch.version.cuda, "cudnn", torch.backends.cudnn.version(), "gpu",
torch.cuda.get_device_name() if torch.cuda.is_available() else None)'
        $PYTHON -c 'import mmengine; print("mmengine", mmengine.__version__)'
    } >"$RUNS/env.txt" 2>&1
    cat "$RUNS/env.txt" >>"$LOG"
fi

# First the CUDA-only tests (skipped without a device): compiled passes
# with CUDA graphs, the step without host stalls.
if has cudatests; then
    run cudatests "$CAP_CUDATESTS" bash -c "set -o pipefail; $PYTHON -m \
        pytest tests/cuda -q -p no:cacheprovider 2>&1 | tee \
        $RUNS/cudatests.txt"
fi

step() { # tag model options...
    local tag=$1 model=$2
    shift 2
    run "$tag" "${CAP:-$CAP_STEP}" $PYTHON benchmarks/step_time.py \
        --device "$DEVICE" --model "$model" "${STEPS[@]}" \
        --out "$RUNS/step_$tag.json" "$@"
}
# In order of importance; what would start past the budget is skipped.
# Eager first: every method at the batch of the paper.
if has step; then
    for m in $MODELS; do
        step "$m-fp32" "$m" --batch-sizes $BATCH
        step "$m-bf16-cl" "$m" --batch-sizes $BATCH --dtype bfloat16 \
            --channels-last
    done
fi
# Where does AUSAM's saving appear? ResNet-18 (smoke: the tiny ResNet).
if has sweep; then
    m=${MODELS%% *}
    step "$m-bf16-cl-sweep" "$m" --batch-sizes $SWEEP --dtype bfloat16 \
        --channels-last --methods SGD,SAM,AUSAM-0.5
fi
if has epoch; then
    run epoch "$CAP_EPOCH" $PYTHON benchmarks/runner_epoch_time.py \
        --out "$RUNS/epoch.json" "${EPOCH_ARGS[@]}"
fi
if has compile; then
    for m in $MODELS; do
        CAP=$CAP_COMPILE step "$m-bf16-cl-compile" "$m" --batch-sizes \
            $BATCH --dtype bfloat16 --channels-last "${COMPILE_ARGS[@]}"
    done
fi
[ $SMOKE = 1 ] && MODELS=  # smoke: one run of each kind is enough
# The rest of the matrix, if time is left.
if has step; then
    for m in $MODELS; do
        step "$m-bf16" "$m" --batch-sizes $BATCH --dtype bfloat16
        step "$m-fp32-cl" "$m" --batch-sizes $BATCH --channels-last
    done
fi
if has compile; then
    for m in $MODELS; do
        for opts in fp32 fp32-cl bf16; do
            args=(--batch-sizes $BATCH)
            [[ $opts == bf16* ]] && args+=(--dtype bfloat16)
            [[ $opts == *-cl ]] && args+=(--channels-last)
            CAP=$CAP_COMPILE step "$m-$opts-compile" "$m" "${args[@]}" \
                "${COMPILE_ARGS[@]}"
        done
    done
fi

# The paper run on the fast path (bf16, CUDA graphs, data on the device):
# pickles made from the JPEG archive (timed), then 200 epochs.
if has fastpath; then
    run fastpath "$CAP_FASTPATH" $PYTHON benchmarks/fastpath.py \
        --out "$RUNS/fastpath.json" "${FASTPATH_ARGS[@]}"
fi

$PYTHON benchmarks/gpu_report.py "$RUNS" "$OUT" --budget "$BUDGET_S" \
    --elapsed $(($(date +%s) - START))
rm -rf "$RUNS"
