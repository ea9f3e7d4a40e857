rule fetch_checkpoint:
    output:
        "resources/checkpoints/{model}.pth",
    log:
        "logs/fetch/{model}.log",
    params:
        url=lambda w: PLAN.model(w.model)["checkpoint"]["url"],
        sha256=lambda w: PLAN.model(w.model)["checkpoint"]["sha256"],
    shell:
        "deploybench fetch --url {params.url:q} --sha256 {params.sha256} --out {output:q}"
        " > {log:q} 2>&1"
