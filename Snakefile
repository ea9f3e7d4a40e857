# deploybench: benchmark OpenMMLab models across deployment backends.
# Rules are thin: each runs one `deploybench <step>` command; the logic lives in src/deploybench.
# The config, its plans and the rules' helpers are in workflow/rules/common.smk.


# `snakemake --report report.html`: the run's docs and figures in one self-contained page.
report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/fetch.smk"
include: "workflow/rules/settings.smk"
include: "workflow/rules/export.smk"
include: "workflow/rules/build.smk"
include: "workflow/rules/measure.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/unavailable.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        [p.published_stamp() for p in PLANS.values()],
