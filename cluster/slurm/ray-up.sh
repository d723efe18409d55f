# shellcheck shell=bash
# Start and stop the Ray cluster of one phasegrid campaign.
#
# Sourced by phasegrid.sbatch (one Ray node per Slurm node) and by tests/cluster/test_cluster.py
# (a head and a worker on loopback, no Slurm). Nothing here is Slurm-specific: the caller
# says how to reach a node by setting the launch prefix PG_RAY_LAUNCH (a bash array)
# before each start, e.g. PG_RAY_LAUNCH=(srun --nodes=1 --ntasks=1 -w "$node"); empty
# means "run on this machine".
#
#   pg_ray_auth_setup                        one token-auth mode for every node and the driver
#   pg_ray_start_head   IP PORT [ARGS...]    `ray start --head --block` in the background
#   pg_ray_start_worker ADDRESS [ARGS...]    `ray start --address ADDRESS --block` in the background
#   pg_ray_wait_nodes   ADDRESS N TIMEOUT_S  0 once N nodes are alive; 1 after TIMEOUT_S
#   pg_ray_stop                              stop the nodes started by this shell, and only those
#
# Stopping never calls `ray stop`: that kills every Ray process of the user on the machine,
# other jobs' (or other users' embedded ray.init) included. `ray start --block` instead
# tears down its own raylet, GCS and workers when it gets SIGTERM, so pg_ray_stop sends
# SIGTERM to the processes it started (srun forwards it to the remote step), waits
# PG_RAY_STOP_GRACE_S, then SIGKILLs what is left (children die with it: Ray sets
# PR_SET_PDEATHSIG on Linux).
#
# Settings (environment, all optional):
#   PG_RAY           ray executable                    (default: ray)
#   PG_PYTHON        python that has ray installed     (default: python)
#   PG_RAY_STOP_GRACE_S  seconds between SIGTERM and SIGKILL  (default: 30)
#   RAY_AUTH_MODE, RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH: see pg_ray_auth_setup.

PG_RAY_LAUNCH=()
PG_RAY_HEAD_PID=""
PG_RAY_WORKER_PIDS=()

# Ray 2.60 turns token auth on by itself in some paths and not in others: `ray.init()`
# always does, `ray start --head` does when ~/.ray/auth_token exists, `ray start --address`
# and `ray.init(address=...)` never do. A head and a worker that disagree cannot talk.
# So choose explicitly, once, before anything starts; every node (srun passes the
# environment on) and the phasegrid driver then agree.
#   RAY_AUTH_MODE=token (default): use RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH if set,
#     else write a fresh per-job token to PG_RAY_TOKEN_FILE (default
#     ~/.ray/phasegrid-<job>.token, mode 600) — it must be on a filesystem every node
#     sees (home usually is); if none is shared, export RAY_AUTH_TOKEN instead.
#   RAY_AUTH_MODE=disabled: no auth (only on a private network).
pg_ray_auth_setup() {
    export RAY_AUTH_MODE="${RAY_AUTH_MODE:-token}"
    if [[ "$RAY_AUTH_MODE" != token ]]; then
        return 0
    fi
    if [[ -n "${RAY_AUTH_TOKEN:-}" || -n "${RAY_AUTH_TOKEN_PATH:-}" ]]; then
        return 0
    fi
    local token_file="${PG_RAY_TOKEN_FILE:-$HOME/.ray/phasegrid-${SLURM_JOB_ID:-$$}.token}"
    mkdir -p "$(dirname "$token_file")" || return 1
    (umask 077 && "${PG_PYTHON:-python}" -c 'import secrets; print(secrets.token_hex(32))' \
        >"$token_file") || return 1
    export RAY_AUTH_TOKEN_PATH="$token_file"
    PG_RAY_OWN_TOKEN_FILE="$token_file"
}

# pg_ray_start_head IP PORT [extra `ray start` args...]
pg_ray_start_head() {
    local ip="$1" port="$2"
    shift 2
    ${PG_RAY_LAUNCH[@]+"${PG_RAY_LAUNCH[@]}"} "${PG_RAY:-ray}" start --head --block \
        --node-ip-address="$ip" --port="$port" --disable-usage-stats "$@" &
    PG_RAY_HEAD_PID=$!
}

# pg_ray_start_worker HEAD_IP:PORT [extra `ray start` args...]
pg_ray_start_worker() {
    local address="$1"
    shift
    ${PG_RAY_LAUNCH[@]+"${PG_RAY_LAUNCH[@]}"} "${PG_RAY:-ray}" start --block \
        --address="$address" --disable-usage-stats "$@" &
    PG_RAY_WORKER_PIDS+=("$!")
}

# pg_ray_wait_nodes HEAD_IP:PORT N TIMEOUT_S
# Polls the cluster's node table (a driver that connects once the GCS port answers)
# until N nodes are alive. Prints one line either way; returns 1 after TIMEOUT_S.
pg_ray_wait_nodes() {
    local address="$1" want="$2" timeout_s="$3"
    # `timeout` bounds the whole thing even if ray.init itself hangs.
    timeout --kill-after=5 "$((timeout_s + 10))" "${PG_PYTHON:-python}" - \
        "$address" "$want" "$timeout_s" <<'PY'
import socket, sys, time

address, want, timeout_s = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
deadline = time.monotonic() + timeout_s
host, port = address.rsplit(":", 1)


def gcs_answers() -> bool:
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
        return True
    except OSError:
        return False


while not gcs_answers():
    if time.monotonic() > deadline:
        print(f"ray-up: no Ray head answers at {address} after {timeout_s:g} s", flush=True)
        sys.exit(1)
    time.sleep(0.5)

import ray  # noqa: E402  (imported late: 1-2 s, not needed when the head is absent)

ray.init(address=address, logging_level="ERROR", log_to_driver=False)
alive = 0
while True:
    alive = sum(1 for node in ray.nodes() if node["Alive"])
    if alive >= want:
        print(f"ray-up: {alive} of {want} nodes alive at {address}", flush=True)
        sys.exit(0)
    if time.monotonic() > deadline:
        print(f"ray-up: only {alive} of {want} nodes joined {address} after "
              f"{timeout_s:g} s; see the worker logs of this job", flush=True)
        sys.exit(1)
    time.sleep(1)
PY
}

# Is PID still running (not exited, not a zombie awaiting `wait`)?
_pg_ray_running() {
    local state
    state="$(ps -o stat= -p "$1" 2>/dev/null)" || return 1
    [[ -n "$state" && "$state" != Z* ]]
}

# _pg_ray_terminate GRACE_S PID... : SIGTERM, wait up to GRACE_S, SIGKILL, reap.
_pg_ray_terminate() {
    local grace="$1" pid deadline alive
    shift
    [[ $# -gt 0 ]] || return 0
    kill -TERM "$@" 2>/dev/null
    deadline=$((SECONDS + grace))
    while :; do
        alive=()
        for pid in "$@"; do
            _pg_ray_running "$pid" && alive+=("$pid")
        done
        [[ ${#alive[@]} -eq 0 ]] && break
        if ((SECONDS >= deadline)); then
            echo "ray-up: SIGKILL to ${alive[*]} after ${grace} s" >&2
            kill -KILL "${alive[@]}" 2>/dev/null
            break
        fi
        sleep 0.5
    done
    wait "$@" 2>/dev/null
    return 0
}

# pg_ray_stop: workers first (so the head does not wait out their death timeout), then the head.
pg_ray_stop() {
    local grace="${PG_RAY_STOP_GRACE_S:-30}"
    _pg_ray_terminate "$grace" ${PG_RAY_WORKER_PIDS[@]+"${PG_RAY_WORKER_PIDS[@]}"}
    PG_RAY_WORKER_PIDS=()
    if [[ -n "$PG_RAY_HEAD_PID" ]]; then
        _pg_ray_terminate "$grace" "$PG_RAY_HEAD_PID"
        PG_RAY_HEAD_PID=""
    fi
    if [[ -n "${PG_RAY_OWN_TOKEN_FILE:-}" ]]; then
        rm -f "$PG_RAY_OWN_TOKEN_FILE"
        PG_RAY_OWN_TOKEN_FILE=""
    fi
}
