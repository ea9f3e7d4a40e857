import json

# Only where the steps run on this machine: in a container the job decides for itself.
if config["runtime"] == "local":
    from deploybench import unavailable

    UNAVAILABLE = unavailable.outputs(PLAN)
else:
    UNAVAILABLE = []


if UNAVAILABLE:

    # The cells and builds this machine cannot run, written as skipped by one job instead of
    # one job each. `machine` holds the reasons: when they change, the files are remade, by
    # this rule or, for what became runnable, by the cell's own rule.
    rule unavailable_cells:
        output:
            UNAVAILABLE,
        log:
            f"logs/unavailable/{PLAN.profile}.log",
        threads: 1
        params:
            config=json.dumps({**config, "profile": PLAN.profile}, sort_keys=True),
            machine=json.dumps(unavailable.reasons(PLAN), sort_keys=True),
        shell:
            "deploybench unavailable --config-json {params.config:q} > {log} 2>&1"

    ruleorder: unavailable_cells > measure
    ruleorder: unavailable_cells > evaluate
    ruleorder: unavailable_cells > quantize_onnxruntime_int8
    ruleorder: unavailable_cells > convert_onnxruntime_fp16
    ruleorder: unavailable_cells > quantize_openvino_int8
    ruleorder: unavailable_cells > build_tensorrt_engine
