import json

# Only where the steps run on this machine: in a container or on a cluster node the job
# decides for itself.
if STEPS_HERE:
    from deploybench import unavailable

    UNAVAILABLE = unavailable.outputs(PLAN)
else:
    UNAVAILABLE = []


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
            f"logs/unavailable/{PLAN.profile}.log",
        threads: 1
        params:
            machine=json.dumps(unavailable.reasons(PLAN), sort_keys=True),
        run:
            count = unavailable.write_unavailable(PLAN)
            with open(log[0], "w") as f:
                print(
                    f"wrote {count} skipped records: cells and builds this machine cannot run",
                    file=f,
                )

    ruleorder: unavailable_cells > measure
    ruleorder: unavailable_cells > evaluate
    ruleorder: unavailable_cells > quantize_onnxruntime_int8
    ruleorder: unavailable_cells > quantize_tensorrt_qdq
    ruleorder: unavailable_cells > convert_onnxruntime_fp16
    ruleorder: unavailable_cells > quantize_openvino_int8
    ruleorder: unavailable_cells > build_tensorrt_engine
