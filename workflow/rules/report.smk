import json
import shlex
from pathlib import Path

from deploybench.metric_bootstrap import per_image_path


def report_command(plan):
    strict = " --strict" if config["report"]["strict"] else ""
    args = ["deploybench", "report", "--profile", plan.profile, "--run", plan.run]
    args += [
        "--out-dir",
        plan.run_report_dir(),
        "--gates",
        json.dumps(config["gates"], sort_keys=True),
    ]
    return shlex.join(args) + strict + " " + shlex.join(plan.all_results())


def publish_command(plan, stamp=""):
    args = ["deploybench", "publish", "--run-report", plan.run_report_dir()]
    args += ["--to", plan.published_dir(), "--profile", plan.profile, "--run", plan.run]
    args += ["--gates", json.dumps(config["gates"], sort_keys=True)]
    args += ["--stamp", stamp] if stamp else []
    return shlex.join(args)


def per_image_files(plan):
    """The evaluate step's per-image metric files, for the bootstrap of each accuracy drop
    (cells this machine cannot run have none)."""
    unavailable = set(UNAVAILABLE)
    return [
        str(per_image_path(r))
        for r in plan.all_results()
        if "/evaluate/" in r and r not in unavailable
    ]


# The run's own docs, from its own results (git-ignored, under results/<profile>/<run>/).
def marked(path):
    """The run's docs as they appear in Snakemake's HTML report."""
    name = Path(path).name
    if name.endswith(".svg"):
        return report(path, caption="../report/figure.rst", category="Figures")
    caption = {"README.md": "front-page", "benchmark.md": "details"}.get(name, "data")
    return report(path, caption=f"../report/{caption}.rst", category="Docs")


rule report:
    input:
        results=lambda w: plan(w).all_results(),
        per_image=lambda w: per_image_files(plan(w)),
    output:
        [marked(path) for path in PLAN.run_report_files()],
    log:
        "logs/{profile}/report.log",
    params:
        command=lambda w: report_command(plan(w)),
    shell:
        "{params.command} > {log:q} 2>&1"


# The committed docs are published from the run's docs, never a Snakemake output themselves:
# their presence in a checkout cannot stand in for a run that has not happened.
rule publish:
    input:
        PLAN.run_report_files(),
    output:
        PLAN.published_stamp(),
    log:
        "logs/{profile}/publish.log",
    params:
        command=lambda w: publish_command(plan(w), plan(w).published_stamp()),
    shell:
        "{params.command} > {log:q} 2>&1"
