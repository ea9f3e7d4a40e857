import json

from deploybench import unavailable


def unavailable_reason(profile):
    """What decides here that a profile's cells cannot run: this machine, where the steps run
    on it; on a cluster, what the profile's node type lacks (the jobs check the rest). In a
    container each job decides for itself."""
    if STEPS_HERE:
        return unavailable.machine_reason
    return node_type_reason(config, profile) if ON_CLUSTER else None


# profile -> what decides its unavailable cells, for the profiles where this process decides
REASONS = {p: r for p in PLANS if (r := unavailable_reason(p))}
UNAVAILABLE = [
    path
    for p, reason in REASONS.items()
    for path in unavailable.outputs(PLANS[p], reason)
]


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
            count = sum(
                unavailable.write_unavailable(PLANS[p], r)
                for p, r in REASONS.items()
            )
            with open(log[0], "w") as f:
                print(
                    f"wrote {count} skipped records: cells and builds this machine cannot run",
                    file=f,
                )

    # Written on the machine Snakemake runs on, also on a cluster: nothing is run.
    localrules:
        unavailable_cells,

    ruleorder: unavailable_cells > evaluate
    ruleorder: unavailable_cells > quantize_onnxruntime_int8
    ruleorder: unavailable_cells > quantize_tensorrt_qdq
    ruleorder: unavailable_cells > convert_onnxruntime_fp16
    ruleorder: unavailable_cells > quantize_openvino_int8
    ruleorder: unavailable_cells > build_tensorrt_engine

    # The measure groups' rules, one per device (measure.smk).
    for name in MEASURE_RULES:
        workflow.ruleorder("unavailable_cells", name)
