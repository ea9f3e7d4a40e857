if UNAVAILABLE:

    # The cells and builds this machine cannot run, written as skipped by one job instead of
    # one job each. `machine` holds the reasons: when they change, the files are remade, by
    # this rule or, for what became runnable, by the cell's own rule.
    rule unavailable_cells:
        # In Snakemake's own process: the plan is already here, and a config of any size never
        # becomes a command line.
        output:
            UNAVAILABLE,
        log:
            "logs/unavailable.log",
        threads: 1
        params:
            machine=json.dumps(
                {p: unavailable.reasons(PLANS[p], r) for p, r in REASONS.items()},
                sort_keys=True,
            ),
        run:
            unavailable.write_all(PLANS, REASONS, Path(log[0]))

    # Written on the machine Snakemake runs on, also on a cluster: nothing is run.
    localrules:
        unavailable_cells,

    ruleorder: unavailable_cells > evaluate
    ruleorder: unavailable_cells > build
    ruleorder: unavailable_cells > train

    # The measure groups' rules, one per device (measure.smk).
    for device in MEASURE_DEVICES:
        workflow.ruleorder("unavailable_cells", f"measure_{device}")
