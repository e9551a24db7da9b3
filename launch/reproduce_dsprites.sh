#!/usr/bin/env bash
# The paper's dSprites results with seeds (issue 26): Table J.2 (MIG of z^L, L = 2), Figure 3 (held-out ELBO without
# beta against beta) and the robustness claims (Section 5), every cell in its own workdir under ROOT, one per seed.
#
#   launch/reproduce_dsprites.sh                      # the whole campaign (resumable: re-run after any kill)
#   SEEDS=0 STEPS=2000 launch/reproduce_dsprites.sh   # a quick pass
#   STEPS=18000 launch/reproduce_dsprites.sh          # later: every run trained on from its checkpoint to 50 epochs
#
# Phases, in the order that answers the issue's questions soonest; every stage of every run is skipped where its
# outputs are newer than the run's latest checkpoint (launch/paper.sh), so a re-run resumes where it stopped:
#   1. Table J.2's bar: beta_tcdlgm and seatbelt at L = 2 and every beta of BAR_BETAS, every seed; trained and
#      evaluated (held-out ELBO; MIG of z^L by both protocols, Chen et al.'s exact one and the histogram one);
#   2. the robustness cells, trained, evaluated and attacked (10 pairs x 50 lambdas, latent on all layers and
#      output, both starts, neighbour restarts): the vanilla VAE, beta_tcvae at ROBUST_BETAS, beta_tcdlgm and
#      seatbelt at L = 2 and 4 and ROBUST_BETAS (the L = 2 ones are phase 1's runs: only their attacks are new);
#      ROBUST_RUNS (family:L:beta entries, in order) replaces that list, e.g. a first seed's look at the claims:
#        PHASES=2 SEEDS=0 STEPS=11000 ROBUST_RUNS="beta_tcdlgm:2:4 seatbelt:2:4 vae:1:1 beta_tcvae:1:4" ...
#   (every hierarchy, once evaluated at its phase's budget, also gets the MIG of every layer, exact protocol on the
#   full grid: LAYER_MIG/<name>_step<step>.json, launch/layer_mig.py; in phase 0 at the last of PROBE_STEPS only)
#   3. the rest of J.2 and Figure 3: beta_tcvae at every beta of BETAS, the hierarchies at the betas phase 1 left;
#   0. (only when PHASES names it) the budget probe: phase 1's cells for the first seed alone, one cell at a time
#      trained on through every budget of PROBE_STEPS and evaluated (and summarised) at each (a cell the summary
#      holds at a budget, but whose workdir is gone and which a later budget must train again from step 0, is
#      trained and evaluated at that budget again on the way); a run trained on
#      keeps its evaluation at every earlier budget (<workdir>/milestones/, launch/milestone.py), so the tables
#      show whether more training changes J.2's answer before the other seeds are spent on a budget, e.g.
#        PHASES=0 PROBE_STEPS="3600 7200 10800 18000" BAR_BETAS="4 8 1" launch/reproduce_dsprites.sh
#   then --mode=report over every cell (ROOT/report/report.md). docs/reproduction/summary.json
#   (launch/collect_reproduction.py; SUMMARY to write it elsewhere), the attacked runs' compact records beside it
#   (attack_records/), and tables.md and its figures over seeds (launch/reproduction_tables.py: J.2's bar, Figure
#   3, attack medians with intervals, from those files alone) are rewritten after every cell and every phase.
# The summary outlives the workdirs: a cell it already holds at the phase's budget (and attacked, in phase 2) is
# skipped whole, so a session that starts on a new machine (ROOT empty; checkpoints are never committed) goes on
# with the cells it lacks instead of training the finished ones again; collect_reproduction.py keeps those rows.
# A cell cut off mid-training on a machine that is then replaced starts again from step 0.
# The recipe (docs/REPRODUCTION.md, step 1, records how it was chosen): Chen et al.'s MLP networks, batch 2048,
# Adam at 1e-3 (paper Appendix C; Chen et al.'s vae_quant.py defaults), the configs' free bits (0.05 nats per unit
# for the hierarchies, paper Section 3; none for the VAE and beta-TCVAE), STEPS = 3600 = 10 epochs of dSprites.
# The same script runs on a GPU machine unchanged (TensorFlow places the work there).
# Environment: ROOT (runs/reproduce), SEEDS ("0 1 2"), BAR_BETAS ("1 4 8"), BETAS ("1 2 4 6 8 10"), ROBUST_BETAS ("4
# 8"), ROBUST_RUNS (phase 2's cells; default from ROBUST_BETAS), NETWORK (mlp), BATCH (2048), LR (0.001), STEPS
# (3600), PAIRS (10), LAMBDAS (50), MIG_POINTS (0: the full grid), LAYER_MIG (the folder for every layer's MIG;
# default layer_mig/ beside SUMMARY; empty: not computed),
# PHASES ("1 2 3"; 0 for the budget probe), PROBE_STEPS ("3600 7200 10800 18000"), EXTRA (more flags for every
# launcher call; absl keeps a flag's last value, so EXTRA overrides the recipe, e.g. EXTRA=--free_bits=0), SUMMARY,
# PYTHON.
# Do not edit the checkout it runs from while it runs: TensorFlow's autograph re-reads Python source when it
# traces a function, so an edit (even one that only shifts line numbers) can break a run mid-campaign (seen: a
# hierarchy's evaluation traced the wrong method). Run long campaigns from a frozen copy, e.g.
#   git worktree add ../campaign HEAD && cd ../campaign && ROOT=$OLDPWD/runs/<folder> PYTHON=... launch/<script>
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
export ROOT=${ROOT:-runs/reproduce}
export SEEDS=${SEEDS:-"0 1 2"}
BAR_BETAS=${BAR_BETAS:-"1 4 8"}
BETAS=${BETAS:-"1 2 4 6 8 10"}
ROBUST_BETAS=${ROBUST_BETAS:-"4 8"}
PHASES=${PHASES:-"1 2 3"}
PROBE_STEPS=${PROBE_STEPS:-"3600 7200 10800 18000"}
export NETWORK=${NETWORK:-mlp}
export STEPS=${STEPS:-3600}
export PAIRS=${PAIRS:-10}
export LAMBDAS=${LAMBDAS:-50}
export MIG_POINTS=${MIG_POINTS:-0}
export MIG_METHOD=both
export PYTHON=${PYTHON:-python}
export EXTRA="--batch_size=${BATCH:-2048} --learning_rate=${LR:-0.001} ${EXTRA:-}"
SUMMARY=${SUMMARY:-$here/docs/reproduction/summary.json}
export LAYER_MIG=${LAYER_MIG-$(dirname "$SUMMARY")/layer_mig}
mkdir -p "$ROOT/logs"

bar="" rest=""
for beta in $BETAS; do
  rest+=" beta_tcvae:1:$beta"
  case " $BAR_BETAS " in *" $beta "*) ;; *) rest+=" beta_tcdlgm:2:$beta seatbelt:2:$beta" ;; esac
done
for beta in $BAR_BETAS; do bar+=" beta_tcdlgm:2:$beta seatbelt:2:$beta"; done
robust="vae:1:1"
for beta in $ROBUST_BETAS; do
  robust+=" beta_tcvae:1:$beta"
  for layers in 2 4; do robust+=" beta_tcdlgm:$layers:$beta seatbelt:$layers:$beta"; done
done
robust=${ROBUST_RUNS:-$robust}

recorded() {  # recorded STEPS ATTACK: the runs the summary holds at STEPS (attacked when ATTACK is 1), on one line
  if [ -f "$SUMMARY" ]; then
    "$PYTHON" "$here/launch/collect_reproduction.py" --recorded "$SUMMARY" "$1" "$2" | tr '\n' ' '
  fi
}
cells() {  # cells RUNS ATTACK: paper.sh on RUNS at STEPS, less the cells the summary holds (attacked, when ATTACK is 1)
  local done_runs
  done_runs=$(recorded "$STEPS" "$2")  # (its own line: set -e stops the campaign if the summary is unreadable)
  RECORDED=$done_runs RUNS="$1" ATTACK=$2 "$here/launch/paper.sh"
}
summarise() {  # summary.json, and the tables and figures over seeds beside it (launch/reproduction_tables.py); the
  # first failure is its status (it also runs in a child bash, without set -e: paper.sh's AFTER_CELL)
  "$PYTHON" "$here/launch/collect_reproduction.py" "$ROOT" "$SUMMARY" &&
    "$PYTHON" "$here/launch/reproduction_tables.py" "$(dirname "$SUMMARY")" "$ROOT" 2> "$ROOT/logs/tables.log"
}
# After every cell, not only every phase: a finished cell is in the summary (the record that outlives the machine)
# before the next cell starts, however long the phase.
export here SUMMARY
export -f summarise
export AFTER_CELL=summarise
for phase in $PHASES; do
  case $phase in
    0) for run in $bar; do  # one cell through every budget, then the next: its whole curve comes first
         for steps in $PROBE_STEPS; do
           echo "== phase 0: budget probe, $run, seed ${SEEDS%% *}, $steps steps"
           done_runs=$(recorded "$steps" 0)  # (its own line: set -e stops the campaign if the summary is unreadable)
           done_last=$(recorded "${PROBE_STEPS##* }" 0)
           skip=""  # a run the summary holds at this budget is skipped whole only where it holds it at the probe's
           # last budget too. Otherwise paper.sh takes it stage by stage: a workdir at or past this budget is left as
           # it is, and a run whose workdir went with an earlier machine trains again from step 0 and is evaluated
           # at every budget on the way, so its curve is one training's (the summary keeps the earlier training's
           # evaluation of the same budget among the row's earlier_runs, not as a milestone of this one).
           for name in $done_runs; do
             case " $done_last " in *" $name "*) skip+=" $name" ;; esac
           done
           layers_at=""  # every layer's MIG at the probe's last budget only (one more pass over the full grid)
           if [ "$steps" = "${PROBE_STEPS##* }" ]; then layers_at=$LAYER_MIG; fi
           RECORDED=$skip RUNS="$run" ATTACK=0 SEEDS="${SEEDS%% *}" STEPS="$steps" LAYER_MIG=$layers_at \
             "$here/launch/paper.sh"  # (summarised after the cell: AFTER_CELL)
         done
       done ;;
    1) echo "== phase 1: Table J.2's bar ($(wc -w <<< "$bar") cells x seeds $SEEDS)"
       cells "$bar" 0 ;;
    2) echo "== phase 2: robustness cells ($(wc -w <<< "$robust") cells x seeds $SEEDS)"
       cells "$robust" 1 ;;
    3) echo "== phase 3: the rest of J.2 and Figure 3 ($(wc -w <<< "$rest") cells x seeds $SEEDS)"
       cells "$rest" 0 ;;
    *) echo "unknown phase '$phase' in PHASES (use 0, 1, 2 and 3)" >&2; exit 2 ;;
  esac
  summarise
done
if ! compgen -G "$ROOT/*/config.json" > /dev/null; then
  echo "== no report: no run workdir under $ROOT (the summary held every cell)"
  exit 0
fi
echo "== report over every cell, and the summary"
"$PYTHON" -m seatbelt_tf.launch --mode=report --workdir="$ROOT/report" --workdirs="$ROOT" --verbose=0 \
  > "$ROOT/logs/report_all.log" 2>&1 || { echo "failed: see $ROOT/logs/report_all.log" >&2; exit 1; }
summarise
