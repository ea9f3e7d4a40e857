rule synthetic_dataset:
    output:
        directory("resources/data/{dataset}"),
    log:
        "logs/data/{dataset}.log",
    wildcard_constraints:
        dataset="|".join(SYNTHETIC) or "^$",
    resources:
        **step_resources("data", NODES, shared=True),
    params:
        spec=lambda w: config["datasets"][w.dataset],
    shell:
        "deploybench data --seed {params.spec[seed]} --num-train {params.spec[num_train]}"
        " --num-val {params.spec[num_val]} --image-size {params.spec[image_size]}"
        " --out {output:q} > {log:q} 2>&1"


rule download_dataset:
    output:
        directory("resources/data/{dataset}"),
    log:
        "logs/data/{dataset}.log",
    wildcard_constraints:
        dataset="|".join(DOWNLOADED) or "^$",
    resources:
        **step_resources("data", NODES, shared=True),
    params:
        archives=lambda w: PLAN.archive_args(w.dataset),
    shell:
        "deploybench download-dataset {params.archives:q} --out {output:q} > {log:q} 2>&1"
