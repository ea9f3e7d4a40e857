rule fetch_checkpoint:
    output:
        "resources/checkpoints/{model}.pth",
    log:
        "logs/fetch/{model}.log",
    resources:
        **step_resources("fetch", NODES, shared=True),
    params:
        url=lambda w: PLAN.model(w.model)["checkpoint"]["url"],
        checksum=lambda w: PLAN.checksum_args(w.model),
    shell:
        "deploybench fetch --url {params.url:q} {params.checksum:q} --out {output:q}"
        " > {log:q} 2>&1"
