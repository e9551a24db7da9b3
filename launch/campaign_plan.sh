#!/usr/bin/env bash
# The reproduction campaign's plan (issue 26; docs/REPRODUCTION.md, "What comes next"): the order in which
# launch/reproduce_dsprites.sh runs, one step per line of STEPS_OF_THE_PLAN below. Every step is resumable and skips
# the cells the summary already holds, and a finished step is written to ROOT/logs/plan.done (its exact text), so
# running the plan again after any kill goes straight back to the first unfinished step.
#
#   launch/campaign_plan.sh --start   # at a session's start, from the checkout: a frozen worktree at HEAD
#                                     # (CAMPAIGN_WORKTREE, default ../campaign), the plan in it in the background
#   launch/campaign_plan.sh --list    # the steps, each marked done or not
#   launch/campaign_plan.sh --pause CMD ARGS...  # CMD with the campaign paused (SIGSTOP to its process group,
#                                     # SIGCONT when CMD ends, however it ends): benchmarks and test runs that must
#                                     # not share this machine's cores with it; CMD's exit status is returned
#   launch/campaign_plan.sh           # the plan itself in the foreground (what --start runs in the worktree)
#
# Why a frozen worktree: TensorFlow's autograph re-reads Python source when it traces, so editing the checkout a
# long run imports from can break it mid-campaign (launch/reproduce_dsprites.sh). --start refuses while the plan it
# started last is still running (ROOT/logs/campaign.pid), and names uncommitted changes, which the worktree lacks.
# Environment: ROOT (runs/reproduce under the checkout), PYTHON (the checkout's .venv/bin/python when it has one),
# SUMMARY (the checkout's docs/reproduction/summary.json), CAMPAIGN_WORKTREE, REPRODUCE (the step runner; tests
# replace it), and everything launch/reproduce_dsprites.sh reads (a step's own settings win over the environment).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

# One step per line: the settings of one launch/reproduce_dsprites.sh run. Every cell trains to 11,000 steps
# (31.0 epochs at batch 2048), so all of Table J.2, Figure 3 and the attacks compare cells at one budget.
STEPS_OF_THE_PLAN=$(cat <<'EOF'
PHASES=2 SEEDS=0 STEPS=11000 ROBUST_RUNS="vae:1:1 beta_tcvae:1:4 beta_tcdlgm:2:4 seatbelt:2:4"
PHASES=0 SEEDS=0 BAR_BETAS="8 1" PROBE_STEPS="3600 7200 11000"
PHASES=2 SEEDS="1 2" STEPS=11000 ROBUST_RUNS="vae:1:1 beta_tcvae:1:4 beta_tcdlgm:2:4 seatbelt:2:4"
PHASES=2 SEEDS="1 2 0" STEPS=11000 ROBUST_RUNS="seatbelt:2:8 beta_tcdlgm:2:8"
PHASES=1 SEEDS="1 2" STEPS=11000
PHASES="2 3" SEEDS="0 1 2" STEPS=11000
EOF
)
# What each step answers (the same order):
#   1. seed 0's look at the robustness claims: the VAE, the beta-TCVAE and both L = 2 hierarchies at beta = 4;
#   2. the budget probe's other J.2 cells of seed 0 (beta = 8 and 1), evaluated at 10, 20 and 31 epochs;
#   3. seeds 1 and 2 of step 1's cells: the robustness claims with three seeds;
#   4. both hierarchies at L = 2, beta = 8, every seed, trained, evaluated and attacked: J.2's beta = 8 cells and the
#      paper's larger-beta robustness cells in one training each (seed 0's J.2 run was never attacked and its
#      checkpoint went with an earlier machine; a J.2-only run now would be trained again for its attacks later);
#      seeds 1 and 2 first: their evaluations are new J.2 numbers even when a session's end cuts off their attacks,
#      where seed 0's retraining is worth only its attacks;
#   5. seeds 1 and 2 of J.2's bar (beta = 1, 4, 8; beta = 4 is step 3's, beta = 8 step 4's, so beta = 1 is left):
#      J.2 with three seeds;
#   6. the rest: the beta-TCVAE at beta = 8, the L = 4 robustness cells, Figure 3's beta-TCVAEs at six betas, J.2's
#      other betas.

export ROOT=${ROOT:-$here/runs/reproduce}
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$here/.venv/bin/python" ]; then PYTHON=$here/.venv/bin/python; else PYTHON=python; fi
fi
export PYTHON
export SUMMARY=${SUMMARY:-$here/docs/reproduction/summary.json}
REPRODUCE=${REPRODUCE:-$here/launch/reproduce_dsprites.sh}
done_file=$ROOT/logs/plan.done
pid_file=$ROOT/logs/campaign.pid
mkdir -p "$ROOT/logs"
touch "$done_file"

is_done() { grep -qxF -- "$1" "$done_file"; }
# The running plan's pid (the leader of its process group), or nothing: the recorded pid is alive and still the
# plan's, not a later process that reused the number.
running_plan() {
  local pid
  pid=$(cat "$pid_file" 2> /dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2> /dev/null && ps -ww -p "$pid" -o args= | grep -q campaign_plan.sh; then
    echo "$pid"
  fi
}

case "${1:-}" in
  --list)
    n=0
    while IFS= read -r step; do
      n=$((n + 1))
      if is_done "$step"; then mark="done"; else mark="to do"; fi
      echo "$n. [$mark] $step"
    done <<< "$STEPS_OF_THE_PLAN"
    exit 0 ;;
  --pause)
    shift
    if [ $# -eq 0 ]; then
      echo "--pause needs a command to run while the campaign is paused, e.g. $0 --pause python benchmarks/mig.py" >&2
      exit 2
    fi
    running=$(running_plan)
    if [ -n "$running" ]; then
      trap 'kill -CONT -- "-$running" 2> /dev/null || true' EXIT
      trap 'exit 130' INT TERM
      kill -STOP -- "-$running"
      # SIGSTOP takes effect asynchronously: wait until every process of the group shows it (ps state T; zombies
      # aside), at most 5 s, so that CMD does not start while a busy campaign process is still on a core.
      for _ in $(seq 50); do
        ps -e -o pgid=,stat= | awk -v g="$running" '$1 == g && $2 !~ /^[TZ]/ {busy = 1} END {exit !busy}' || break
        sleep 0.1
      done
      echo "campaign paused (process group $running; should this shell be killed outright, resume it with" \
           "kill -CONT -- -$running) while: $*" >&2
    else
      echo "note: no campaign is running; running the command alone" >&2
    fi
    set +e
    "$@"
    status=$?
    exit "$status" ;;
  --start)
    running=$(running_plan)
    if [ -n "$running" ]; then
      echo "the campaign is already running (pid $running, log $ROOT.log): let it run, or stop it with" \
           "kill -- -$running and start again" >&2
      exit 1
    fi
    if [ -n "$(git -C "$here" status --porcelain --untracked-files=no)" ]; then
      echo "note: the checkout has uncommitted changes; the campaign runs HEAD ($(git -C "$here" rev-parse --short HEAD))" >&2
    fi
    worktree=${CAMPAIGN_WORKTREE:-$(dirname "$here")/campaign}
    case "$worktree" in /*) ;; *) worktree=$PWD/$worktree ;; esac
    git -C "$here" worktree remove --force "$worktree" 2> /dev/null || rm -rf "$worktree"
    git -C "$here" worktree prune
    git -C "$here" worktree add --detach --quiet "$worktree" HEAD
    # The plan runs with the worktree as its working directory: `python -m seatbelt_tf.launch` imports the package
    # of its working directory first (sys.path[0], ahead of the editable install), so a plan started in the
    # checkout would run the checkout's live code, not the worktree's (it did, until 2026-12-06). Paths given
    # relative to the checkout are made absolute first.
    case "$ROOT" in /*) ;; *) ROOT=$PWD/$ROOT; pid_file=$ROOT/logs/campaign.pid ;; esac
    case "$SUMMARY" in /*) ;; *) SUMMARY=$PWD/$SUMMARY ;; esac
    case "$PYTHON" in /*) ;; */*) PYTHON=$PWD/$PYTHON ;; esac  # (a bare name stays a PATH lookup)
    cd "$worktree"
    # setsid: the plan leads its own process group, so `kill -- -PID` stops it and every run it started.
    ROOT=$ROOT PYTHON=$PYTHON SUMMARY=$SUMMARY REPRODUCE=${REPRODUCE/#$here/$worktree} \
      setsid nohup "$worktree/launch/campaign_plan.sh" >> "$ROOT.log" 2>&1 < /dev/null &
    echo $! > "$pid_file"
    echo "campaign started at $(git -C "$worktree" rev-parse --short HEAD) in $worktree: pid $!, log $ROOT.log"
    echo "progress: $PYTHON $here/launch/campaign_status.py $ROOT $SUMMARY; steps: $0 --list"
    exit 0 ;;
  "") ;;
  *) echo "unknown argument '$1' (use --start, --list, --pause CMD or nothing)" >&2; exit 2 ;;
esac

n=0
while IFS= read -r step; do
  n=$((n + 1))
  if is_done "$step"; then
    echo "== plan step $n: done ($step)"
    continue
  fi
  echo "== plan step $n, $(date -u +%FT%TZ): $step"
  # (the step's settings are fixed text above, so eval runs nothing else)
  ( eval "export $step"; "$REPRODUCE" ) < /dev/null
  echo "$step" >> "$done_file"
done <<< "$STEPS_OF_THE_PLAN"
echo "== plan: every step done, $(date -u +%FT%TZ)"
