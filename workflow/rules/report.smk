rule report:
    input:
        results=lambda w: plan(w).all_results(),
        per_image=lambda w: per_image_files(plan(w)),
    output:
        [marked(path) for path in PLAN.run_report_files()],
    log:
        f"{PLAN.logs_dir()}/report.log",
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
        f"{PLAN.logs_dir()}/publish.log",
    params:
        command=lambda w: publish_command(plan(w), plan(w).published_stamp()),
    shell:
        "{params.command} > {log:q} 2>&1"
