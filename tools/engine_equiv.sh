#!/usr/bin/env bash
# engine_equiv.sh — records what the engine does on a set of models, so that a
# refactor can be shown to change nothing: run it with the binary built before
# and the one built after, then `diff -r` the two output directories.
#
#   tools/engine_equiv.sh RESNETD OUTDIR [NAME=MODEL[:INPUT.npy] ...]
#
# Per case it writes NAME.out.npy (`resnetd infer`, compared byte for byte)
# and NAME.verbose (the oneDNN primitive sequence from ONEDNN_VERBOSE=2: kind,
# implementation, layouts, attributes and shapes of every primitive created
# and executed, with the timing field removed). MODEL is a .onnx file or a
# model directory; a directory whose config.json says int8 needs its
# quant.tsv (write one with `resnetd quantize`, then diff the two files too).
# Without INPUT.npy, a deterministic float32 input of the model's shape is
# generated (tools/engine_equiv.py) with batch 3, or BATCH=N. With no cases,
# the bundled fashion-mnist model is used. Runs with --threads 1 (THREADS=N to
# change) so the primitive choice does not depend on the machine's cores.
set -euo pipefail
if [[ $# -lt 2 ]]; then
    sed -n '2,17p' "$0" >&2
    exit 2
fi
bin=$(realpath "$1")
out=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
cases=("$@")
[[ ${#cases[@]} -gt 0 ]] || cases=("fmnist=$here/../models/fashion-mnist")
for c in "${cases[@]}"; do
    name=${c%%=*}
    spec=${c#*=}
    model=${spec%%:*}
    input=
    [[ $spec == *:* ]] && input=${spec#*:}
    if [[ -z $input ]]; then
        input=$out/$name.in.npy
        /usr/bin/python3 "$here/engine_equiv.py" "$model" "${BATCH:-3}" "$input"
    fi
    # Keep the primitive lines (create and exec), drop the trailing time.
    ONEDNN_VERBOSE=2 "$bin" infer --model "$model" --threads "${THREADS:-1}" "$input" "$out/$name.out.npy" \
        2>&1 | grep -E '^onednn_verbose,(create|exec)' | sed -E 's/,[0-9.]+$//' \
        >"$out/$name.verbose"
    echo "$name: $(wc -l <"$out/$name.verbose") primitive lines, $(sha256sum <"$out/$name.out.npy" | cut -c1-16)"
done
