rule build:
    input:
        unpack(model_inputs),
        source=lambda w: plan(w).build_source(w.model, w.shape, *build_of(w).key),
        settings=PLAN.settings("build"),
    output:
        model=f"{PLAN.results_dir()}/build/{{model}}/{{shape}}/{{artifact}}",
        result=f"{PLAN.results_dir()}/build/{{model}}/{{shape}}/{{artifact}}.json",
    log:
        # Kept: TensorRT's warnings, for one, say which layers fell back and why.
        f"{PLAN.logs_dir()}/build/{{model}}/{{shape}}/{{artifact}}.log",
    wildcard_constraints:
        shape=SHAPE,
        artifact="|".join(map(re.escape, BUILDS)),
    resources:
        **step_resources("build", NODES),
        gpu=lambda w: int(build_of(w).gpu),
    params:
        model=lambda w: model_args(PLAN, w.model, w.shape),
        build=lambda w: build_command(plan(w), *build_of(w).key),
        machine=lambda w: machine_state(*build_of(w).key),
        batches=lambda w: " ".join(map(str, PLAN.batches(w.model))),
    shell:
        "{params.build} {params.model} --batches {params.batches}"
        " --settings {input.settings:q}"
        " --onnx {input.source:q} --artifact {output.model:q}"
        " --out {output.result:q} > {log:q} 2>&1"
