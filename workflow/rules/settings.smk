# Each step's section of the validated config, as its jobs read it (`--settings`): a changed
# setting changes the file (the rule's params), which reruns the jobs that read it.
rule step_settings:
    output:
        f"{PLAN.results_dir()}/settings/{{section}}.json",
    log:
        f"{PLAN.logs_dir()}/settings/{{section}}.log",
    wildcard_constraints:
        section="measure|build|train",
    params:
        values=lambda w: json.dumps(config[w.section], sort_keys=True),
    run:
        write_section(Path(output[0]), config[wildcards.section])
        Path(log[0]).write_text(f"wrote {output[0]}\n")
