import json
import shlex


def report_command(results):
    out_dir = f"reports/{PLAN.profile}"
    strict = " --strict" if config["report"]["strict"] else ""
    return (
        f"deploybench report --profile {PLAN.profile} --out-dir {out_dir}{strict}"
        f" --gates {shlex.quote(json.dumps(config['gates'], sort_keys=True))} "
        + shlex.join(results)
    )


rule report:
    input:
        PLAN.all_results(),
    output:
        PLAN.report_files(),
    log:
        f"logs/report/{PLAN.profile}.log",
    params:
        command=report_command(PLAN.all_results()),
    shell:
        "{params.command} > {log} 2>&1"
