# Sourced by the GPU command's steps (step_a_op.sh, step_b_suite.sh): each
# part runs under its own time limit, its output goes to $OUT/NAME.log as
# it runs, and its section (command, exit status, seconds, an excerpt) is
# appended to $REPORT as soon as it ends. No part runs past STEP_SECONDS
# (default 570) from the step's start: the step ends, report written,
# inside the device machine's 10 minutes a command.
: "${OUT:=gpu-out}" "${STEP_SECONDS:=570}"
mkdir -p "$OUT"
FAILED=0

note() { printf '%s\n' "$@" >> "$REPORT"; }

# part NAME SECONDS COMMAND...: runs COMMAND for at most SECONDS (less if
# the step's time is nearly spent); 0 or its exit status.
part() {
    local name=$1 limit=$2 start=$SECONDS left=$((STEP_SECONDS - SECONDS))
    local status
    shift 2
    [ "$limit" -le "$left" ] || limit=$left
    if [ "$left" -lt 10 ]; then
        FAILED=1
        note "" "## $name" "" "Not run: the step's ${STEP_SECONDS} s are spent."
        return 1
    fi
    echo "== $name (at most ${limit} s)" >&2
    timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.log" 2>&1
    status=$?
    [ "$status" -eq 0 ] || FAILED=1
    note "" "## $name" "" "\`$*\`: exit $status$(
        [ "$status" -eq 124 ] && echo ' (timed out)'), $((SECONDS - start)) s, \
log \`$name.log\`."
    return "$status"
}

# excerpt NAME [GREP-PATTERN]: the part's log (the lines that match), last
# 40, as a code block in the report.
excerpt() {
    note '' '```'
    if [ -n "${2:-}" ]; then
        grep -E -- "$2" "$OUT/$1.log" | tail -n 40 >> "$REPORT"
    else
        tail -n 40 "$OUT/$1.log" >> "$REPORT"
    fi
    note '```'
}
