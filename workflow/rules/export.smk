rule export_onnx:
    input:
        unpack(model_inputs),
    output:
        onnx=PLAN.onnx("{model}", "{shape}"),
        saved_input=PLAN.saved_input("{model}", "{shape}"),
        result=PLAN.export_result("{model}", "{shape}"),
    log:
        f"{PLAN.logs_dir()}/export/{{model}}/{{shape}}.log",
    wildcard_constraints:
        shape=SHAPE,
    resources:
        **step_resources("export", NODES),
    params:
        model=lambda w: model_args(PLAN, w.model, w.shape),
        opset=config["export"]["opset"],
        dynamic=lambda w: (
            f"--dynamic-batch {PLAN.max_batch(w.model)}"
            if PLAN.max_batch(w.model) > 1
            else ""
        ),
    shell:
        "deploybench export {params.model} --opset {params.opset} {params.dynamic}"
        " --onnx {output.onnx:q} --saved-input {output.saved_input:q}"
        " --out {output.result:q} > {log:q} 2>&1"
