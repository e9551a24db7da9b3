"""One module per --mode, each with one public function of the mode's name taking a `RunConfig`:

| module | entry point | what it does |
|---|---|---|
| `train` | `train(config)` | trains (or resumes) the run in the workdir, then evaluates it on the held-out split |
| `evaluate` | `evaluate(config)` | held-out metrics and the evaluation suite of the latest checkpoint or an export |
| `attack` | `attack(config)` | the paper's attack protocol into `<workdir>/attacks/` |
| `export` | `export(config)` | the latest checkpoint as a SavedModel version for TF Serving |
| `report` | `report(config)` | the runs of --workdirs aggregated into one report |
| `tune` | `tune(config)` | a Keras Tuner search |

What the modes share (workdir, model building, checkpoints, opening a trained run) is `seatbelt_tf.runs`;
`seatbelt_tf.launch` dispatches --mode through its `MODES` table. The modules are imported on use.
"""
