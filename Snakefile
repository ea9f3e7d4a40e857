# deploybench: benchmark OpenMMLab models across deployment backends.
# Rules are thin: each runs one `deploybench <step>` command; the logic lives in src/deploybench.
import os
import sys

from snakemake.exceptions import WorkflowError

from deploybench.config import Plan, container_prefix, validate
from deploybench.errors import UserError


configfile: "config.yaml"


try:
    config.update(validate(config))
except UserError as err:
    raise WorkflowError(str(err)) from None

PLAN = Plan(config)
# Rules call the `deploybench` installed beside the Python that runs this Snakemake.
os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]
if config["runtime"] == "docker":
    # Every step runs in the pinned image; Snakemake, the DAG and the logs stay on the host.
    shell.prefix(f"set -euo pipefail; {container_prefix(config)} ")


include: "workflow/rules/data.smk"
include: "workflow/rules/fetch.smk"
include: "workflow/rules/export.smk"
include: "workflow/rules/build.smk"
include: "workflow/rules/measure.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/unavailable.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        PLAN.published_stamp(),


onerror:
    # A failed cell still appears in the docs, with its reason; the run itself stays failed.
    # (braces doubled: the command holds the gates as JSON, and shell() formats its argument)
    command = f"{report_command(PLAN.all_results())} --after-failure && {publish_command()} || true"
    shell(command.replace("{", "{{").replace("}", "}}"))
