rule evaluate:
    input:
        unpack(cell_inputs),
    output:
        f"{PLAN.results_dir()}/evaluate/{{model}}/{{backend}}-{{precision}}-b{{batch}}.json",
    log:
        "logs/evaluate/{model}/{backend}-{precision}-b{batch}.log",
    wildcard_constraints:
        backend="[a-z_]+",
        precision="fp32|fp16|int8",
        batch="1",
    threads: 1
    params:
        model=lambda w: model_args(PLAN, w.model),
        artifact=artifact_arg,
        limit=lambda w: (
            f"--limit {config['evaluate']['limit']}"
            if config["evaluate"]["limit"]
            else ""
        ),
        device=config["device"],
    shell:
        "deploybench evaluate {params.model} --backend {wildcards.backend}"
        " --precision {wildcards.precision} {params.artifact} --device {params.device}"
        " --threads {threads} {params.limit} --out {output} > {log} 2>&1"
