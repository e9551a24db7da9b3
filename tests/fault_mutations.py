"""Shows that each fault test in tests/test_faults.py fails when the protection it checks is switched off.

For every protection: copy the repository to a scratch folder, switch the protection off there with one source edit
(a "mutation"), run the test that guards it against the copy, and expect it to FAIL. Prints one table row per
mutation; exits 1 if any test still passes with its protection off (that test could not fail, so it is a defect), or
fails for another reason than a failed check (an error while collecting or setting up).

Usage: python tests/fault_mutations.py [--only=substring]   (about 5 minutes on 2 cores; not part of CI)
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The conditionals' heads at Keras's default initialisation (the hierarchies' stall), for two health tests.
UNIT_SCALE_HEADS = ("kernel_initializer=GaussianHeadKernel(loc_gain),\n"
                    "                      bias_initializer=GaussianHeadBias(), ")

# (test name, file, text to replace, replacement, what the edit switches off); a test name without "::" is in
# tests/test_faults.py
MUTATIONS = [
    ("test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint", "seatbelt_tf/modes/train.py",
     "if loss is not None and not np.all(np.isfinite(np.asarray(loss, np.float64))):", "if False:",
     "the stop at the first non-finite loss"),
    ("test_skip_mode_leaves_nonfinite_batches_out_and_counts_them", "seatbelt_tf/models/base.py",
     "    if not self.skip_nonfinite:\n      self.optimizer.apply", "    if True:\n      self.optimizer.apply",
     "--on_nonfinite=skip (updates applied whatever the loss)"),
    ("test_a_truncated_latest_checkpoint_falls_back_to_the_previous_one", "seatbelt_tf/runs.py",
     "failures.append(f\"{os.path.basename(path)} ({type(e).__name__}: {str(e).splitlines()[0][:200]})\")\n"
     "      continue", "raise", "the fallback to the previous checkpoint"),
    ("test_a_killed_training_process_resumes_where_its_last_checkpoint_left_off", "seatbelt_tf/runs.py",
     "  candidates = checkpoint_candidates(folder)\n", "  candidates = []\n", "resuming from the checkpoints"),
    ("test_a_killed_training_process_resumes_where_its_last_checkpoint_left_off", "seatbelt_tf/runs.py",
     "checkpoint = tf.train.Checkpoint(model=list(model.variables),",
     "checkpoint = tf.train.Checkpoint(model=list(model.trainable_variables),",
     "checkpointing the non-trainable state (BatchNorm statistics, sampling-seed state)"),
    ("test_malformed_and_unreadable_flagfiles_are_refused_naming_the_file", "seatbelt_tf/launch.py",
     "except (UnicodeDecodeError, OSError) as e:", "except OSError as e:", "the check that a flagfile is text"),
    ("test_contradictory_settings_are_named", "seatbelt_tf/config.py",
     "elif t.on_nonfinite == \"skip\" and t.strategy != \"default\":", "elif False:",
     "the check of contradictory --on_nonfinite/--strategy"),
    ("test_corrupt_image_files_fail_naming_the_file_or_are_skipped_and_counted", "seatbelt_tf/data/image_folder.py",
     "      if bad_images == \"fail\":", "      if True:", "--bad_images=skip"),
    ("test_a_folder_that_is_not_a_usable_savedmodel_is_refused", "seatbelt_tf/serving.py",
     "    except (ValueError, OSError, tf.errors.OpError, protobuf_message.DecodeError) as e:",
     "    except KeyboardInterrupt as e:",
     "the clear error for an export that cannot be loaded"),
    ("test_stale_export_folders_of_killed_exporters_are_removed", "seatbelt_tf/serving.py",
     "not pid.isdigit() or _process_alive(int(pid)):", "not pid.isdigit() or True:",
     "removing the folders of killed exporters"),
    ("test_attacks_refuse_nonfinite_and_misshapen_arrays", "seatbelt_tf/attacks/protocol.py",
     "not np.isfinite(inputs).all() or not np.isfinite(targets).all()",
     "np.isnan(inputs).any() or np.isnan(targets).any()", "the Inf check of attack arrays"),
    ("test_hostile_command_lines_get_one_clear_error_and_damage_nothing", "seatbelt_tf/launch.py",
     "except (ValueError, FileNotFoundError, FloatingPointError) as e:", "except FloatingPointError as e:",
     "the launcher's one-line errors"),
    ("test_rerunning_a_finished_mode_changes_nothing_but_timings", "seatbelt_tf/io_utils.py",
     "  os.replace(tmp, path)\n  fsync_folder(", "  __import__('shutil').copyfile(tmp, path)\n  fsync_folder(",
     "write-then-rename (temporaries left behind)"),
    ("test_training_health.py::test_step0_kl_and_gradient_norm_of_every_hierarchy_stay_within_10x_of_the_beta_tcvae",
     "seatbelt_tf/nn/heads.py",
     UNIT_SCALE_HEADS, "",
     "the unit-scale Gaussian heads (Keras's default Glorot/zero initialisation instead)"),
    ("test_training_health.py::test_short_run_seatbelt_elbo_is_within_10_percent_of_the_beta_tcvae",
     "seatbelt_tf/nn/heads.py",
     UNIT_SCALE_HEADS, "",
     "the unit-scale Gaussian heads, seen 75 steps in (held-out ELBO 25% below the beta-TCVAE's, not 0.3%)"),
    ("test_attacks.py::test_scipy_runs_on_one_blas_thread_and_gives_the_threads_back", "seatbelt_tf/attacks/lbfgs.py",
     "  with _single_threaded_blas():  # (once for the whole loop", "  if True:  # (once for the whole loop",
     "scipy's L-BFGS-B on one BLAS thread (numpy's default threads instead)"),
    ("test_reproduction.py::test_the_budget_probe_trains_a_cell_whose_workdir_is_gone_through_every_budget",
     "launch/reproduce_dsprites.sh", 'case " $done_last " in *" $name "*) skip+=" $name" ;; esac', 'skip+=" $name"',
     "the budget probe training a cell whose workdir is gone through every budget (skipped where recorded)"),
    ("test_reproduction.py::test_the_summary_outlives_the_workdirs_and_the_campaign_skips_the_cells_it_records",
     "launch/collect_reproduction.py",
     '    if old is not None and old["train_steps"] < row["train_steps"] and trained_on(old, row):',
     '    if old is not None and old["train_steps"] < row["train_steps"]:',
     "a run trained again from step 0 past its record kept apart from the record (not given it as a milestone)"),
    ("test_reproduction.py::test_the_summary_keeps_which_unit_holds_each_factor_at_every_budget",
     "launch/collect_reproduction.py", '    return {name: j for j, name in enumerate(result["factor_names"])}',
     '    return {name: j for j, name in enumerate(sorted(result["factor_names"]))}',
     "the best unit's MI read from its factor's column (the result's names)"),
    ("test_reproduction.py::test_the_summary_keeps_which_unit_holds_each_factor_at_every_budget",
     "launch/collect_reproduction.py", "    columns[name] = found[0]",
     "    columns[name] = sorted(result[\"factor_entropy\"]).index(name)",
     "an older evaluation's columns found from its numbers (not its sorted keys)"),
    ("test_reproduction.py::test_the_summary_keeps_which_unit_holds_each_factor_at_every_budget",
     "launch/collect_reproduction.py", '"mig_factors_exact": factor_gaps(files.get("evaluation.json")),\n',
     '"mig_factors_exact": None,\n', "a milestone's per-factor record"),
    ("test_reproduction.py::test_an_earlier_training_keeps_its_curves_when_the_cell_is_trained_again",
     "launch/collect_reproduction.py",
     "        os.replace(training_path(summary_dir, name), earlier_training_path(summary_dir, name, index))",
     "        pass", "an earlier training's curves kept when the cell is trained again"),
    ("test_reproduction.py::test_an_earlier_training_keeps_its_curves_when_the_cell_is_trained_again",
     "launch/reproduction_tables.py", 'for e in row.get("earlier_runs") or []] + [(row, 1.0, "")]',
     'for e in []] + [(row, 1.0, "")]', "the earlier training drawn in the training figure"),
    ("test_reproduction.py::test_figure3_pairs_a_cell_with_beta_1_at_the_same_budget_only",
     "launch/reproduction_tables.py", '{(r["seed"], _budget(b)): b["elbo"] for r in rows',
     '{(r["seed"], _budget(r)): r["elbo"] for r in rows', "Figure 3 pairing β = 1's milestones by budget"),
    ("test_reproduction.py::test_the_j2_bar_waits_until_a_cell_s_three_seeds_share_one_budget",
     "launch/reproduction_tables.py", "  if len(set(budgets)) > 1:", "  if False:",
     "J.2's bar pending while a cell's seeds differ in budget"),
    ("test_reproduction.py::test_the_attack_verdict_waits_until_the_cell_and_the_vae_share_one_budget",
     "launch/reproduction_tables.py", 'budgets.get(("vae", 1, 1.0), set())) > 1:',
     'budgets.get(("vae", 1, 1.0), set())) > 9:', "Section 5's verdict pending while the runs differ in budget"),
    ("test_training_health.py::test_the_guard_names_the_step_and_layer_of_a_kl_jump", "seatbelt_tf/health.py",
     "spiking = ratios > self.factor", "spiking = ratios > np.inf", "the per-step spike guard"),
    ("test_attacks_beyond.py::test_projection_is_feasible_and_the_nearest_point_of_ball_and_box",
     "seatbelt_tf/attacks/budget.py", "  t = tf.where(inside, tf.ones_like(t), tf.minimum(t, 1.0))",
     "  t = tf.ones_like(t)", "the exact projection (clip to the box, then shrink: feasible but not the nearest)"),
    ("test_attacks_beyond.py::test_hmc_leaves_a_conjugate_gaussian_posterior_invariant",
     "seatbelt_tf/attacks/defence.py", "  return state, accepted / max(int(num_steps), 1)",
     "  return list(initial_state), accepted / max(int(num_steps), 1)", "the HMC chain's transitions (codes left "
     "at the encoder's draws)"),
    ("test_step_reference.py::test_one_training_step_matches_the_stored_reference", "seatbelt_tf/models/base.py",
     "  return loc, tf.nn.softplus(raw_scale) + MIN_SCALE",
     "  return loc, tf.nn.softplus(raw_scale) * 1.001 + MIN_SCALE",
     "unchanged numerics of a training step (a 0.1% change of every posterior scale)"),
    ("test_lbfgs_backends.py::test_reduced_direction_twin_equals_numpy", "seatbelt_tf/attacks/lbfgs_tf.py",
     "  k22 = th * sbsb * pair_mask + pad", "  k22 = 1.001 * th * sbsb * pair_mask + pad",
     "the tf backend's direction equal to numpy's (a 0.1% change of the binding block of K)"),
    ("test_lbfgs_backends.py::test_free_set_grams_and_running_products_twins_equal_numpy",
     "seatbelt_tf/attacks/lbfgs_tf.py", "  sign = tf.where(is_change, tf.where(became_free, 1.0, -1.0), 0.0)",
     "  sign = tf.where(is_change, tf.where(became_free, 1.0, -1.0), 0.0) * 0.999",
     "the tf backend's sparse free-set updates equal to numpy's"),
    ("test_attacks.py::test_a_pinned_problem_stays_at_its_start_whatever_the_round_off", "seatbelt_tf/attacks/lbfgs.py",
     "& (f_try[b] < decrease_limit(f[r]))", "& (f_try[b] < f[r])",
     "the numpy driver's decrease floor (a round-off 'decrease' accepted as a step)"),
    ("test_attacks.py::test_a_pinned_problem_stays_at_its_start_whatever_the_round_off",
     "seatbelt_tf/attacks/lbfgs_tf.py", "& (f_try < f_limit)", "& (f_try < f_rows)",
     "the tf driver's decrease floor"),
    ("test_reproduction.py::test_summary_and_tables_of_a_fabricated_campaign", "launch/reproduction_tables.py",
     "  ok = mean <= threshold if op == \"<=\" else mean >= threshold", "  ok = mean >= threshold",
     "the direction of J.2's bar at beta = 1 (MIG at most 0.10)"),
    ("test_reproduction.py::test_compact_attack_records_round_trip_at_float32_precision",
     "launch/collect_reproduction.py", 'return float(f"{value:.9g}")', 'return float(f"{value:.6g}")',
     "the compact attack records keeping float32's precision"),
    ("test_reproduction.py::test_the_summary_outlives_the_workdirs_and_the_campaign_skips_the_cells_it_records",
     "launch/collect_reproduction.py", "    if name not in rows:\n      rows[name] = old",
     "    if False:\n      rows[name] = old", "the summary keeping a run whose workdir is gone (a new machine)"),
    ("test_reproduction.py::test_the_summary_outlives_the_workdirs_and_the_campaign_skips_the_cells_it_records",
     "launch/collect_reproduction.py", "      continue  # the workdir is behind the record",
     "      pass  # the workdir is behind the record",
     "the summary keeping its record over a workdir restarted from scratch"),
    ("test_reproduction.py::test_the_summary_outlives_the_workdirs_and_the_campaign_skips_the_cells_it_records",
     "launch/paper.sh", '"== $name: already in the campaign\'s summary at this budget (RECORDED): skipped"\n    continue',
     '"== $name: already in the campaign\'s summary at this budget (RECORDED): skipped"',
     "the campaign skipping a cell its summary already holds"),
    ("test_launch.py::test_paper_sh_s_logs_keep_every_call_of_a_run_trained_on_to_the_next_budget",
     "launch/paper.sh", '"$@"; } >> "$log" 2>&1 ||', '"$@"; } > "$log" 2>&1 ||',
     "a cell's log overwritten by its next budget's call (its training-health warnings lost)"),
    ("test_training_health.py::test_results_count_the_guard_s_spikes_over_the_whole_run_resumptions_included",
     "seatbelt_tf/health.py",
     'self.spikes = self.add_weight(shape=(), initializer="zeros", trainable=False, name="spikes", aggregation=agg)',
     'self.spikes = tf.Variable(0.0, trainable=False, name="spikes")',
     "the guard's spike count left out of the checkpoint (a resumed run's results forget earlier spikes)"),
    ("test_launch.py::test_tiny_train_then_evaluate",
     "seatbelt_tf/modes/evaluate.py",
     "    records = runs.training_records(config.workdir, int(model.optimizer.iterations.numpy()))\n",
     "    records = {}\n",
     "--mode=evaluate rewriting results.json without the training loop's speed"),
    ("test_reproduction.py::test_figure3_takes_the_vanilla_vae_as_the_beta_tcvae_s_beta_1",
     "launch/reproduction_tables.py", ' and r["beta"] == 1.0 and not r.get("free_bits"))]',
     ' and r["beta"] == 1.0)]', "a VAE trained with free bits (another loss) taken as the beta-TCVAE's beta = 1"),
    ("test_reproduction.py::test_figure3_takes_the_vanilla_vae_as_the_beta_tcvae_s_beta_1",
     "launch/reproduction_tables.py", '    rows = _figure3_family(runs, model, layers)\n    reference =',
     '    rows = [r for r, _ in runs if (r["model"], r["layers"]) == (model, layers)]\n    reference =',
     "Figure 3's beta-TCVAE without a beta = 1 (the vanilla VAE left out)"),
    ("test_reproduction.py::test_summary_and_tables_of_a_fabricated_campaign",
     "launch/collect_reproduction.py", '                "health_spikes": results.get("health_spikes")})',
     "                })", "a run's earlier budgets losing the guard's count at that budget"),
    ("test_reproduction.py::test_attack_labels_and_their_figure_ticks_name_the_layer_set_and_what_is_out_of_date",
     "launch/reproduction_tables.py", """          + f"\\n{seeds} seed{'s' if seeds != 1 else ''}" + (""", "          + (",
     "the attack figure's ticks not saying how many seeds a cell's interval pools"),
    ("test_reproduction.py::test_the_campaign_starts_from_a_frozen_worktree_and_refuses_a_second_start",
     "launch/campaign_plan.sh", '    cd "$worktree"\n', "",
     "the plan started in the checkout's directory (its launcher calls import the checkout's live package)"),
    ("test_reproduction.py::test_the_campaign_starts_from_a_frozen_worktree_and_refuses_a_second_start",
     "launch/campaign_plan.sh",
     '    case "$ROOT" in /*) ;; *) ROOT=$PWD/$ROOT; pid_file=$ROOT/logs/campaign.pid ;; esac\n',
     "", "a ROOT relative to the checkout read from the worktree"),
    ("test_reproduction.py::test_the_summary_reports_each_family_s_latent_attack_as_the_paper_defines_it",
     "launch/collect_reproduction.py", "  latent_layers = paper_latent_layers(model)\n",
     "  latent_layers = \"all\"\n", "the summary reporting the beta-TC DLGM's latent attack on z^1 (paper eq. 14)"),
    ("test_reproduction.py::test_robust_runs_picks_phase_2_s_cells_in_its_order_with_the_full_attack_protocol",
     "launch/paper.sh", "if [ \"$family\" = beta_tcdlgm ]; then layer_sets=first,all; fi",
     "true", "the campaign attacking a beta-TC DLGM's z^1 alone (paper eq. 14)"),
    ("test_reproduction.py::test_robust_runs_picks_phase_2_s_cells_in_its_order_with_the_full_attack_protocol",
     "launch/paper.sh", '    cell "$seed" "$run" "$name" "$workdir"\n    after_cell\n',
     '    cell "$seed" "$run" "$name" "$workdir"\n', "the summary rewritten after every cell (AFTER_CELL)"),
    ("test_reproduction.py::test_robust_runs_picks_phase_2_s_cells_in_its_order_with_the_full_attack_protocol",
     "launch/paper.sh", "    after_cell  # the evaluation is recorded now", "    true  # ",
     "a cell's evaluation recorded before its attacks and every-layer MIG (AFTER_CELL after the evaluate stage)"),
    ("test_reproduction.py::test_robust_runs_picks_phase_2_s_cells_in_its_order_with_the_full_attack_protocol",
     "launch/paper.sh", '      if [ "$attacked" = 1 ]; then after_cell; fi', "      true",
     "a hierarchy's attacks recorded before its every-layer MIG (AFTER_CELL after the attack stage)"),
    ("test_reproduction.py::test_robust_runs_picks_phase_2_s_cells_in_its_order_with_the_full_attack_protocol",
     "launch/paper.sh", '    if [ ! -f "$out" ]; then', "    if true; then",
     "every layer's MIG computed once per run and budget, not again"),
    ("test_reproduction.py::test_robust_runs_picks_phase_2_s_cells_in_its_order_with_the_full_attack_protocol",
     "launch/reproduce_dsprites.sh", 'if [ "$steps" = "${PROBE_STEPS##* }" ]; then layers_at=$LAYER_MIG; fi',
     "layers_at=$LAYER_MIG", "the budget probe scoring every layer at its last budget only"),
    ("test_reproduction.py::test_campaign_status_tells_each_run_s_stage_and_training_left_without_tensorflow",
     "launch/campaign_status.py", "os.path.getmtime(path) < os.path.getmtime(checkpoint_path)", "False",
     "the status telling an evaluation older than the checkpoint (stale) from a current one"),
    ("test_launch.py::test_command_line_refuses_bad_input_with_a_clear_message", "seatbelt_tf/launch.py",
     "except (ValueError, FileNotFoundError, FloatingPointError) as e:", "except FloatingPointError as e:",
     "the launcher's one-line errors, on every bad command line (run through the console entry point)"),
    ("test_reproduction.py::test_robust_runs_picks_phase_2_s_cells_in_its_order_with_the_full_attack_protocol",
     "launch/reproduce_dsprites.sh", '"$ROOT" "$SUMMARY" &&\n', '"$ROOT" "$SUMMARY"\n',
     "a summary that cannot be written stopping the campaign (summarise's status in AFTER_CELL's child bash)"),
    ("test_launch.py::test_every_launcher_call_of_the_quickstart_is_a_valid_command_line", "launch/paper.sh",
     '--mig_points="$MIG_POINTS"', '--mig_point="$MIG_POINTS"',
     "the quickstart's command lines being the launcher's (a flag misspelt in the scripts)"),
    ("test_launch.py::test_every_launcher_call_of_paper_sh_s_grid_entries_is_a_valid_command_line", "launch/paper.sh",
     'if [ -n "${dim:-}" ]; then flags+=(--latent_dim="$dim"); fi', "true",
     "a grid entry's own |z| (family:L:beta:latent_dim) reaching the launcher"),
    ("test_reproduction.py::test_robust_runs_picks_phase_2_s_cells_in_its_order_with_the_full_attack_protocol",
     "launch/reproduce_dsprites.sh", 'export EXTRA="--batch_size=${BATCH:-2048}',
     'export EXTRA="--batchsize=${BATCH:-2048}',
     "the campaign's command lines being the launcher's (a flag misspelt in the recipe)"),
    ("test_reproduction.py::test_a_summary_that_is_not_json_stops_every_campaign_script_with_one_line_naming_it",
     "launch/collect_reproduction.py", "  except (ValueError, UnicodeDecodeError) as e:",
     "  except UnicodeDecodeError as e:", "a campaign file that is not JSON named in one line, not a traceback"),
    ("test_launch.py::test_every_launcher_call_of_the_other_scripts_is_a_valid_command_line", "launch/attack_shards.sh",
     'run() { "$PYTHON" -m seatbelt_tf.launch "$@" --mode=attack',
     'run() { "$PYTHON" -m seatbelt_tf.launch --mode=attack "$@"',
     "attack_shards.sh attacking when given a workdir's flags.cfg (which records --mode=train)"),
    ("test_launch.py::test_every_launcher_call_of_the_other_scripts_is_a_valid_command_line", "launch/multi_worker.sh",
     'seatbelt_tf.launch "$@" --strategy=multi_worker', 'seatbelt_tf.launch --strategy=multi_worker "$@"',
     "multi_worker.sh's strategy holding over a workdir's flags.cfg"),
    ("test_reproduction.py::test_elbo_vs_beta_table_gives_each_cell_s_seed_spread_and_change_against_the_same_seeds_"
     "beta_1", "launch/collect_results.py", 'np.mean([by_seed[r["seed"]] for r in paired])',
     "np.mean(list(by_seed.values()))", "Figure 3's change paired by seed (not against every beta = 1 run)"),
    ("test_reproduction.py::test_robustness_table_gives_pooled_and_displayed_medians_with_an_interval_and_each_seed_s_"
     "median", "launch/collect_attacks.py", 'shown = [[[r for r in pair if r.get("display")]',
     "shown = [[[r for r in pair if True]", "the robustness table's displayed-lambda medians"),
    ("test_reproduction.py::test_robustness_table_gives_pooled_and_displayed_medians_with_an_interval_and_each_seed_s_"
     "median", "launch/collect_attacks.py", 'mark = "≈ " if any(source != "own" for _, source in parts) else ""',
     'mark = ""', "the robustness table's mark of an approximate floor"),
    ("test_reproduction.py::test_robustness_table_gives_pooled_and_displayed_medians_with_an_interval_and_each_seed_s_"
     "median", "launch/collect_attacks.py", "    if name.endswith(SAVED_SUFFIX):", "    if False:",
     "the robustness table from saved files (docs/remeasure)"),
    ("test_launch.py::test_every_launcher_call_of_the_other_scripts_is_a_valid_command_line", "launch/robustness.sh",
     '  if [ "$ROOT/$name/attacks/attack_results.json" -nt "$ROOT/$name/checkpoints/checkpoint" ]; then',
     '  if [ -f "$ROOT/$name/attacks/attack_results.json" ]; then',
     "robustness.sh attacking a run again once it has trained on (no stale attack in its table)"),
    ("test_networks.py::test_fused_batch_norm_equals_keras_batch_norm", "seatbelt_tf/nn/networks.py",
     "    variance = unbiased * tf.maximum(n - 1.0, 0.0) / n", "    variance = unbiased",
     "the fused BatchNorm's moving variance being Keras's (biased) one"),
    ("test_networks.py::test_norm_block_equals_the_plain_block", "seatbelt_tf/nn/networks.py",
     "      mean = mean + tf.cast(shift, tf.float32)", "      mean = mean",
     "norm_block's moving mean recording the bias it leaves out of the map"),
    ("test_networks.py::test_the_1x1_transposed_convolution_is_keras_s", "seatbelt_tf/nn/networks.py",
     "    kernel = tf.reshape(tf.cast(self.kernel, inputs.dtype), [kh * kw * filters, channels])",
     "    kernel = tf.reshape(tf.transpose(tf.cast(self.kernel, inputs.dtype), [1, 0, 2, 3]), "
     "[kh * kw * filters, channels])",
     "the 1x1 transposed convolution's matmul using Keras's kernel layout"),
    ("test_networks.py::test_norm_block_with_a_frozen_batch_norm_keeps_the_bias", "seatbelt_tf/nn/networks.py",
     "    if shift is not None and not (training and self.trainable and not self.renorm):",
     "    if shift is not None and not (training and not self.renorm):",
     "norm_block adding the bias when BatchNorm uses its moving statistics"),
    ("test_reproduction.py::test_the_campaign_plan_runs_its_steps_in_order_and_resumes_at_the_first_unfinished_one",
     "launch/campaign_plan.sh", '  echo "$step" >> "$done_file"\n', "",
     "the plan keeping its finished steps (a restart resuming at the first unfinished one)"),
    ("test_reproduction.py::test_the_campaign_starts_from_a_frozen_worktree_and_refuses_a_second_start",
     "launch/campaign_plan.sh", 'if [ -n "$pid" ] && kill -0', 'if false && kill -0',
     "--start refusing while the campaign it started still runs"),
    ("test_reproduction.py::test_a_sweep_by_an_older_attack_driver_is_attacked_again_not_retrained",
     "launch/reproduction_tables.py", "  if driver != collect_reproduction.DRIVER_VERSION:\n", "  if False:\n",
     "the tables naming a sweep by an older attack driver as out of date"),
    ("test_attacks.py::test_sweep_records_are_complete_consistent_and_reproducible_from_the_saved_arrays",
     "seatbelt_tf/attacks/protocol.py", "noise = fixed_noise(fns.layer_sizes, n, seed + 1, sample, rows)",
     "noise = fixed_noise(fns.layer_sizes, n, seed + 1, sample + 1, rows)",
     "the target's own -log p(x^t|z~) on the score's own draws"),
    ("test_reproduction.py::test_the_excess_over_the_floor_is_the_target_s_own_nll_else_each_pair_s_smallest_lambdas",
     "seatbelt_tf/scores.py", "key=lambda r: r[\"lambda\"])[:count]", "key=lambda r: -r[\"lambda\"])[:count]",
     "the approximate floor at each pair's smallest lambdas"),
    ("test_reproduction.py::test_the_excess_over_the_floor_is_the_target_s_own_nll_else_each_pair_s_smallest_lambdas",
     "seatbelt_tf/scores.py", '  elif all(r["mode"] == "latent" and "lambda" in r for r in records):', "  elif True:",
     "no approximate floor for the output attack, which ends below it"),
    ("test_reproduction.py::test_the_excess_over_the_floor_is_the_target_s_own_nll_else_each_pair_s_smallest_lambdas",
     "seatbelt_tf/scores.py", 'key=lambda r: r["lambda"])[:FLOOR_LAMBDAS]', 'key=lambda r: r["lambda"])',
     "the KL bound read at the approximate floor's lambdas only"),
    ("test_reproduction.py::test_the_excess_over_the_floor_is_the_target_s_own_nll_else_each_pair_s_smallest_lambdas",
     "launch/reproduction_tables.py", "if max(bounds) <= scores.FLOOR_KL_TOLERANCE", "if True",
     "the tables' verdict on an approximate floor whose attack never matched the target's posterior"),
    ("test_reproduction.py::test_summary_and_tables_of_a_fabricated_campaign",
     "launch/reproduction_tables.py", 'nll = seed_stats.median_interval([groups_of_seed], "target_nll",',
     'nll = seed_stats.median_interval(groups, "target_nll",',
     "the seed-by-seed attack table on each seed's own records"),
    ("test_reproduction.py::test_the_floor_check_takes_the_seeds_that_record_the_target_s_own_score",
     "launch/reproduction_tables.py", "      if not checked:\n", "      if len(checked) < len(groups):\n",
     "the floor check on a cell's seeds that record the target's own score, not only on cells where all do"),
    ("test_reproduction.py::test_the_excess_over_the_floor_is_the_target_s_own_nll_else_each_pair_s_smallest_lambdas",
     "seatbelt_tf/scores.py", "  if floors is None and records and latent:", "  if False:",
     "an output attack's floors read from the same sweep's latent attack"),
    ("test_reproduction.py::test_the_excess_over_the_floor_is_the_target_s_own_nll_else_each_pair_s_smallest_lambdas",
     "seatbelt_tf/scores.py", "if floors is not None and not {r[\"pair\"] for r in records} <= set(floors):",
     "if False:", "no floor for an output attack whose pairs the latent attack does not cover"),
    ("test_reproduction.py::test_summary_and_tables_of_a_fabricated_campaign", "launch/reproduction_tables.py",
     "scores.excess_over_floor(_without_own(part), _without_own(latent))",
     "scores.excess_over_floor(_without_own(part), _without_own(part))",
     "the floor check of the output attack through the latent attack's floors"),
    ("test_reproduction.py::test_summary_and_tables_of_a_fabricated_campaign", "seatbelt_tf/scores.py",
     'for r in records if r["lambda"] == lam], [25, 50, 75])',
     'for r in records if r["lambda"] <= lam], [25, 50, 75])', "the excess curves' quartiles at each lambda alone"),
    ("test_reproduction.py::test_the_campaign_s_file_only_scripts_load_without_tensorflow",
     "seatbelt_tf/evaluation/__init__.py", "import importlib\n",
     "import importlib\nfrom seatbelt_tf.evaluation import measures  # noqa\n",
     "seatbelt_tf.evaluation importing its TensorFlow modules on first use only"),
    ("test_tuning.py::test_robustness_objective_is_finite_and_tells_models_apart", "seatbelt_tf/tuning.py",
     '"robustness_excess": float(np.median(excess))}', '"robustness_excess": float(np.median(excess)) + 1e-3}',
     "the tuner's robustness_excess being the median excess over the target's own score"),
    ("test_reproduction.py::test_summary_and_tables_of_a_fabricated_campaign", "launch/reproduction_tables.py",
     'for k in ("target_nll", "excess"))', 'for k in ("target_nll", "target_nll"))',
     "the tables judging the excess over the floor against the VAE's"),
    ("test_reproduction.py::test_attack_labels_and_their_figure_ticks_name_the_layer_set_and_what_is_out_of_date",
     "launch/reproduction_tables.py", 'label.replace(";", ",").split(",")[0]', 'label.split(",")[0]',
     "the attack figure's panel for a label with a semicolon"),
    ("test_tuning.py::test_the_paper_style_search_config_parses_and_searches_for_the_excess", "configs/tune.cfg",
     "--tune_objective=robustness_excess\n", "--tune_objective=combined\n--tune_elbo_floor=-150\n",
     "configs/tune.cfg searching for the excess over the floor"),
    ("test_reproduction.py::test_the_summary_outlives_the_workdirs_and_the_campaign_skips_the_cells_it_records",
     "launch/collect_reproduction.py", 'and old.get("elbo") != row.get("elbo")\n', "\n",
     "an earlier run kept only when the cell was trained again (not on every collection)"),
    ("test_reproduction.py::test_the_paired_comparisons_match_numpy_on_the_shared_problems",
     "launch/reproduction_tables.py", 'return record["approximate"] if record["floor"] == "own" else record["excess"]',
     'return record["excess"]', "the paired comparison putting both sweeps on the approximate floor"),
    ("test_reproduction.py::test_the_paired_comparisons_match_numpy_on_the_shared_problems",
     "launch/reproduction_tables.py", 'RISE_LOG2[0] <= np.log2(r["lambda"]) < RISE_LOG2[1]', 'True',
     "the paired comparison keeping to the lambdas where the curves rise"),
    ("test_reproduction.py::test_pause_runs_a_command_with_the_campaign_stopped_and_resumes_it_however_the_command_ends",
     "launch/campaign_plan.sh", 'kill -STOP -- "-$running"', "true", "--pause stopping the campaign's processes"),
    ("test_reproduction.py::test_pause_runs_a_command_with_the_campaign_stopped_and_resumes_it_however_the_command_ends",
     "launch/campaign_plan.sh", """trap 'kill -CONT -- "-$running" 2> /dev/null || true' EXIT""", "trap 'true' EXIT",
     "--pause letting the campaign go on when the command ends"),
    ("test_networks.py::test_blocked_kernel_gradient_equals_autodiff_s_single_product",
     "seatbelt_tf/nn/networks.py", "tf.matmul(x, dy[:, s:s + columns], transpose_a=True)",
     "tf.matmul(x, dy[:, :columns], transpose_a=True)", "the decoder head's kernel gradient taking each block's own columns"),
    ("test_reproduction.py::test_the_paired_comparisons_match_numpy_on_the_shared_problems",
     "launch/reproduction_tables.py", "return (paper or current or [None])[0]", "return (current or [None])[0]",
     "the paired comparison with a beta-TC DLGM reading its paper's latent attack (z^1), not its all-layer one"),
]


def _copy(destination):
  ignore = shutil.ignore_patterns(".git", "runs", "*.egg-info", "__pycache__", ".pytest_cache", ".venv*")
  shutil.copytree(REPO, destination, ignore=ignore)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--only", default="", help="run the mutations whose test name contains this")
  args = parser.parse_args()
  rows, survivors = [], 0
  for test, path, old, new, what in MUTATIONS:
    if args.only not in test:
      continue
    with tempfile.TemporaryDirectory(prefix="mutation-") as scratch:
      copy = os.path.join(scratch, "repo")
      _copy(copy)
      source = open(os.path.join(copy, path)).read()
      if source.count(old) != 1:
        raise SystemExit(f"{path}: the text to mutate for {test} occurs {source.count(old)} times (expected 1); "
                         "update MUTATIONS")
      mutated = source.replace(old, new, 1)
      with open(os.path.join(copy, path), "w") as f:
        f.write(mutated)
      env = {**os.environ, "PYTHONPATH": copy, "TF_CPP_MIN_LOG_LEVEL": "2", "CI": "true"}
      check = subprocess.run([sys.executable, "-c", "import seatbelt_tf; print(seatbelt_tf.__file__)"], env=env,
                             cwd=copy, capture_output=True, text=True)
      if not check.stdout.startswith(copy):
        raise SystemExit(f"the copy's seatbelt_tf was not imported ({check.stdout.strip()}{check.stderr[-500:]})")
      start = time.time()
      proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                             f"tests/{test}" if "::" in test else f"tests/test_faults.py::{test}"], env=env, cwd=copy, capture_output=True, text=True)
      lines = proc.stdout.strip().splitlines()
      failed = proc.returncode == 1 and lines and " failed" in lines[-1] and "error" not in lines[-1]
      reason = next((ln[1:].strip() for ln in lines if ln.startswith("E ")), lines[-1] if lines else "")
      survivors += not failed
      rows.append(f"| {what} | `{test}` | {'fails (good)' if failed else '**does not fail as it should**'}: "
                  f"{reason[:140].replace('|', '/')} | {time.time() - start:.0f} s |")
      print(rows[-1], flush=True)
  print("\n| protection switched off | test | result: first error line | s |\n|---|---|---|---|\n"
        + "\n".join(rows))
  return 1 if survivors else 0


if __name__ == "__main__":
  sys.exit(main())
