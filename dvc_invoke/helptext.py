"""The help texts of the run options, shared by `inv repro` and every pipeline task."""

HELP = {
    "pipeline": "The pipeline: a configured name, a pipeline task, a folder with a dvc.yaml"
    " (pipelines/train, . for the root), a DVC file or a stage address (dvc.yaml:evaluate).",
    "force": "Re-run the pipeline's own stages even if nothing changed"
    " (never the pipelines it reads from).",
    "upstream": "First run the stale pipelines this one reads from, each whole"
    " (stages, gates, publishing); otherwise their last results are pulled.",
    "detach": "Check everything, then run in the background and return at once:"
    " the run survives logging out; follow it with `inv repro.logs --follow`.",
    "slurm": "Check everything, then submit the run to SLURM with sbatch (the pipeline's"
    " slurm options) and return at once: the same flow runs in the job.",
    "host": "Run on a GPU host over SSH, or the first free host of a group"
    " (dvc_invoke.hosts, host_groups): your commit, detached there (with --slurm: submitted"
    " from there).",
    "skip": "Leave out a check on purpose: fetch, git-push, dvc-remote or slack. Repeatable.",
}
