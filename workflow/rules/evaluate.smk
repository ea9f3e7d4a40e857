rule reference_outputs:
    input:
        unpack(model_inputs),
    output:
        PLAN.reference("{model}", "{shape}"),
    log:
        f"{PLAN.logs_dir()}/reference/{{model}}/{{shape}}.log",
    wildcard_constraints:
        shape=SHAPE,
    threads: 1
    resources:
        **step_resources("reference", NODES),
    params:
        model=lambda w: model_args(PLAN, w.model, w.shape),
        images=config["parity"]["images"],
    shell:
        "deploybench reference {params.model} --images {params.images} --threads {threads}"
        " --out {output:q} > {log:q} 2>&1"


rule evaluate:
    input:
        unpack(cell_inputs),
        reference=PLAN.reference("{model}", "{shape}"),
    output:
        result=f"{PLAN.results_dir()}/evaluate/{{model}}/{{shape}}/{{device}}/{{backend}}-{{precision}}-b{{batch}}.json",
        # the metric per image, for the report's bootstrap of the drop vs PyTorch fp32
        images=f"{PLAN.results_dir()}/evaluate/{{model}}/{{shape}}/{{device}}/{{backend}}-{{precision}}-b{{batch}}.images.npz",
    log:
        f"{PLAN.logs_dir()}/evaluate/{{model}}/{{shape}}/{{device}}/{{backend}}-{{precision}}-b{{batch}}.log",
    wildcard_constraints:
        shape=SHAPE,
        device="cpu|cuda",
        backend="[a-z_]+",
        precision="fp32|fp16|int8",
        batch="1",
    threads: 1
    resources:
        **step_resources("evaluate", NODES),
        gpu=lambda w: int(w.device == "cuda"),
    params:
        model=lambda w: model_args(PLAN, w.model, w.shape),
        artifact=artifact_arg,
        limit=lambda w: (
            f"--limit {PLAN.evaluate_limit(w.model)}"
            if PLAN.evaluate_limit(w.model)
            else ""
        ),
        parity=parity_args(),
        published=lambda w: PLAN.published_args(w.model),
        machine=cell_machine,
    shell:
        "deploybench evaluate {params.model} --backend {wildcards.backend}"
        " --precision {wildcards.precision} {params.artifact} --device {wildcards.device}"
        " --threads {threads} {params.limit} --reference {input.reference:q} {params.parity}"
        " --per-image-out {output.images:q} {params.published:q} --out {output.result:q}"
        " > {log:q} 2>&1"
